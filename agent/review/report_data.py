"""The numbers behind the report's charts, computed from an ArchiveView (agent/review/view.py).

x axes count candidates in the order stored (the order the campaign made them; seeds first), so
the charts of one report line up. Nothing here draws or escapes: agent/review/report.py does.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from optforge.agent.campaign.summary import CandidateRow
from optforge.agent.review.view import ArchiveView
from optforge.archive import TaskResult

LION = "lion"  # the seed the report draws next to AdamW (Lion came from a program search too)


def best_by_island(view: ArchiveView) -> dict[str, list[tuple[float, float]]]:
    """The running best tier-1 score of all candidates ("all") and of each island ("island N", by
    island of birth): one point per candidate stored (x: its 1-based index), from the first
    scored candidate on. Tier 1, which every scored candidate has: a running best over rank scores
    would mix tier-2 scores with the higher-running tier-1 ones."""
    best: dict[str, float] = {}
    points: dict[str, list[tuple[float, float]]] = {}
    for index, row in enumerate(view.rows.values(), 1):
        score = row.tier1_score
        for key in (f"island {row.island}", "all"):
            if score is not None and score > best.get(key, float("-inf")):
                best[key] = score
            if key in best:
                points.setdefault(key, []).append((float(index), best[key]))
    return dict(sorted(points.items(), key=lambda item: (item[0] != "all", item[0])))


def new_scores(view: ArchiveView) -> list[float]:
    """Tier-1 scores of the scored candidates the campaign made (seeds excluded): one scale for
    all of them (only the tier-1 leaders have tier-2 scores)."""
    return [
        r.tier1_score for r in view.rows.values() if not r.is_seed and r.tier1_score is not None
    ]


def seed_row(view: ArchiveView, name: str) -> CandidateRow | None:
    return next((r for r in view.seeds() if r.name == name), None)


def status_over_time(view: ArchiveView) -> dict[str, list[tuple[float, float]]]:
    """Status -> cumulative count of new candidates with it, at each new candidate (x: index over
    new candidates). "ok" first, then failures by frequency."""
    new = [r for r in view.rows.values() if not r.is_seed]
    totals = Counter(r.status for r in new)
    order = sorted(totals, key=lambda s: (s != "ok", -totals[s], s))
    counts: Counter[str] = Counter()
    points: dict[str, list[tuple[float, float]]] = {s: [] for s in order}
    for index, row in enumerate(new, 1):
        counts[row.status] += 1
        for status in order:
            points[status].append((float(index), float(counts[status])))
    return points


def llm_cost_over_time(view: ArchiveView) -> list[tuple[float, float]]:
    """(minutes since the first candidate, cumulative USD) from the start and at each LLM call;
    unknown prices count 0. Empty when there were no calls."""
    if not view.llm_calls:
        return []
    start = min([c.created_at for c in view.candidates.values()] + [view.llm_calls[0].created_at])
    total, points = 0.0, [(0.0, 0.0)]  # nothing spent when the campaign began
    for call in sorted(view.llm_calls, key=lambda c: c.created_at):
        total += call.cost_usd or 0.0
        points.append(((call.created_at - start) / 60.0, total))
    return points


@dataclass(frozen=True)
class CurvePanel:
    """One task's held-out metric over training: the top candidates, tuned AdamW and Lion."""

    task: str
    metric: str
    tier: int
    curves: dict[str, tuple[float, ...]]  # label -> mean held-out metric per checkpoint
    missing: tuple[str, ...] = ()  # what could not be drawn, and why (one short line each)


def curve_candidates(
    view: ArchiveView, ranked: list[CandidateRow], tier: int, k: int
) -> list[CandidateRow]:
    """The best `k` of `ranked` that have task curves at `tier`."""
    return [r for r in ranked if any(t.curve for t in _tasks(view, r.id, tier))][:k]


def curve_panels(view: ArchiveView, top: list[CandidateRow], tier: int) -> list[CurvePanel]:
    """One panel per task of `tier`, in the order the tasks were evaluated."""
    names: list[str] = []
    for r in top:
        names += [t.name for t in _tasks(view, r.id, tier) if t.name not in names]
    return [_panel(view, top, tier, name) for name in names]


def _panel(view: ArchiveView, top: list[CandidateRow], tier: int, name: str) -> CurvePanel:
    curves: dict[str, tuple[float, ...]] = {}
    missing: list[str] = []
    metric = ""
    reference_curve: tuple[float, ...] = ()
    for r in top:
        task = _task(view, r.id, tier, name)
        if task and task.curve:
            curves[f"{r.id[:8]} {r.name}"] = task.curve
            metric = metric or task.metric
            reference_curve = reference_curve or task.reference_curve
        elif task:
            missing.append(f"{r.id[:8]} {r.name}: {task.status}")
    if reference_curve:
        curves["tuned AdamW"] = reference_curve  # every candidate's task holds the same reference curve
    lion = seed_row(view, LION)
    lion_task = _task(view, lion.id, tier, name) if lion else None
    if lion_task and lion_task.curve:
        curves["Lion"] = lion_task.curve
    else:
        why = "no Lion seed" if lion is None else f"Lion has no tier-{tier} curve on this task"
        missing.append(why)
    return CurvePanel(name, metric, tier, curves, tuple(missing))


def _tasks(view: ArchiveView, cid: str, tier: int) -> tuple[TaskResult, ...]:
    evaluation = view.evaluation(cid, tier)
    return evaluation.tasks if evaluation is not None else ()


def _task(view: ArchiveView, cid: str, tier: int, name: str) -> TaskResult | None:
    return next((t for t in _tasks(view, cid, tier) if t.name == name), None)


LRML = "lrml"  # the seed the preference report draws next to DPO (DiscoPOP's discovered loss)


@dataclass(frozen=True)
class FrontierPanel:
    """One preference task's reward-vs-KL points: the top candidates, DPO and LRML."""

    task: str
    tier: int
    points: dict[str, tuple[tuple[float, float], ...]]  # label -> (KL, reward) by increasing KL
    missing: tuple[str, ...] = ()


def frontier_candidates(view: ArchiveView, ranked: list[CandidateRow], tier: int, k: int) -> list[CandidateRow]:
    """The best `k` of `ranked` that have frontier points at `tier`."""
    return [r for r in ranked if any(t.frontier for t in _tasks(view, r.id, tier))][:k]


def frontier_panels(view: ArchiveView, top: list[CandidateRow], tier: int) -> list[FrontierPanel]:
    names: list[str] = []
    for r in top:
        names += [t.name for t in _tasks(view, r.id, tier) if t.name not in names]
    return [_frontier_panel(view, top, tier, name) for name in names]


def _kl_reward(frontier: tuple[tuple[float, float, float], ...]) -> tuple[tuple[float, float], ...]:
    return tuple(sorted((kl, reward) for _, kl, reward in frontier))


def _frontier_panel(view: ArchiveView, top: list[CandidateRow], tier: int, name: str) -> FrontierPanel:
    points: dict[str, tuple[tuple[float, float], ...]] = {}
    missing: list[str] = []
    reference: tuple[tuple[float, float, float], ...] = ()
    for r in top:
        task = _task(view, r.id, tier, name)
        if task and task.frontier:
            points[f"{r.id[:8]} {r.name}"] = _kl_reward(task.frontier)
            reference = reference or task.reference_frontier
        elif task:
            missing.append(f"{r.id[:8]} {r.name}: {task.status}")
    if reference:
        points["DPO"] = _kl_reward(reference)  # every candidate's task holds the same DPO runs
    lrml = seed_row(view, LRML)
    lrml_task = _task(view, lrml.id, tier, name) if lrml else None
    if lrml_task and lrml_task.frontier:
        points["LRML"] = _kl_reward(lrml_task.frontier)
    else:
        missing.append("no LRML seed" if lrml is None else f"LRML has no tier-{tier} result on this task")
    return FrontierPanel(name, tier, points, tuple(missing))


# -- scaling rules ------------------------------------------------------------------------------

MUP, CONSTANT = "mup", "constant"  # the seeds the scaling report draws next to the tuned optimum
_WIDTH = re.compile(r"_w(\d+)$")  # a scaling task's result per width: "stdlib_resmlp_w64"
FLOOR = 1e-12  # a weight decay at or below this is none (the vector group's)


@dataclass(frozen=True)
class WidthResult:
    """A scaling rule at one width: what it set and how far its held-out loss was from the tuned
    optimum's (tier 1: widths 64-256, one seed; tier 2: width 512, three)."""

    width: int
    tier: int
    status: str
    groups: dict[str, tuple[float, float]]  # group -> (lr, weight decay) the rule trained with
    gap: float | None  # mean held-out loss - the tuned optimum's, in nats (capped); None: failed
    gap_ci: tuple[float, float] | None  # over seeds (tier 2)
    tuned_lr: float | None  # the tuned optimum's hidden learning rate at this width


@dataclass(frozen=True)
class RuleWidths:
    """One rule's results at every width it was scored at, by width."""

    id: str
    label: str  # "1a2b3c4d name" for a new candidate, the name for a seed
    name: str
    seed: bool
    widths: tuple[WidthResult, ...]

    def values(self, group: str, index: int) -> list[tuple[float, float]]:
        """(width, lr) (index 0) or (width, weight decay) (index 1) of `group`, by width."""
        return [(float(w.width), w.groups[group][index]) for w in self.widths if group in w.groups]

    def gaps(self) -> list[tuple[float, float]]:
        return [(float(w.width), w.gap) for w in self.widths if w.gap is not None]


@dataclass(frozen=True)
class TunedOptimum:
    """The reference the rules are scored against, as far as it can be drawn: its hidden learning
    rate at each scored width (from the results), and its weight decay there and the base values
    at the base width (from the shipped reference file, when it is there and is the one the
    evaluations used)."""

    lr: tuple[tuple[float, float], ...]  # (width, hidden lr), the base width's first
    weight_decay: tuple[tuple[float, float], ...]  # (width, hidden weight decay)
    base_width: int | None  # None: no usable reference file (no base point)
    note: str | None = None  # what is not drawn, and why


def width_of(task: str) -> int | None:
    match = _WIDTH.search(task)
    return int(match.group(1)) if match else None


def rule_widths(view: ArchiveView, row: CandidateRow) -> RuleWidths:
    """`row`'s per-width results on tiers 1 and 2 (a width scored on both: tier 2's, more seeds)."""
    found: dict[int, WidthResult] = {}
    for tier in (1, 2):
        for t in _tasks(view, row.id, tier):
            width = width_of(t.name)
            if width is None or not t.hyperparameters:
                continue
            gap = None
            if t.status == "ok" and t.final is not None and t.reference_final is not None:
                gap = t.final - t.reference_final  # the mean capped gap: final = L* + capped gaps
            found[width] = WidthResult(width, tier, t.status, {g: (lr, wd) for g, lr, wd in t.hyperparameters},
                                       gap, t.paired_diff_ci if gap is not None else None, t.reference_lr)
    label = row.name if row.is_seed else f"{row.id[:8]} {row.name}"
    return RuleWidths(row.id, label, row.name, row.is_seed, tuple(found[w] for w in sorted(found)))


def scaling_candidates(view: ArchiveView, ranked: list[CandidateRow], k: int) -> list[CandidateRow]:
    """The best `k` of `ranked` that have per-width results (the hyperparameters they trained with)."""
    return [r for r in ranked if rule_widths(view, r).widths][:k]


def scaling_rules(view: ArchiveView, top: list[CandidateRow]) -> tuple[list[RuleWidths], list[str]]:
    """The rules to draw: `top`, then the muP and constant seeds that have per-width results; and
    a line for each seed that could not be drawn."""
    rules = [rule_widths(view, r) for r in top]
    missing = []
    for name in (MUP, CONSTANT):
        seed = seed_row(view, name)
        rule = rule_widths(view, seed) if seed is not None else None
        if rule is not None and rule.widths:
            rules.append(rule)
        else:
            missing.append(f"no {name} seed" if seed is None else f"{name} has no per-width results")
    return rules, missing


def tuned_optimum(view: ArchiveView, rules: list[RuleWidths]) -> TunedOptimum:
    from optforge.tasks.scaling import reference

    lrs = {w.width: w.tuned_lr for r in rules for w in r.widths if w.tuned_lr is not None}
    lr = [(float(w), lrs[w]) for w in sorted(lrs)]
    try:
        ref = reference.load()
    except (reference.ReferenceMissing, OSError, ValueError, KeyError, TypeError):
        return TunedOptimum(tuple(lr), (), None, "no reference file (tasks/scaling/data/reference.json): "
                            "the base width's point and the tuned weight decays are not drawn")
    evaluations = [view.evaluation(r.id, tier) for r in rules for tier in (1, 2)]
    versions = {v for e in evaluations if e is not None for v in e.task_versions.values()}
    if any(ref.digest not in v for v in versions):
        return TunedOptimum(tuple(lr), (), None, f"the shipped reference ({ref.digest}) is not the one these "
                            "results were scored against: its base values and tuned weight decays are not drawn")
    widths = sorted(w for w in {w.width for r in rules for w in r.widths} if w in ref.widths)
    base = ref.base()["hidden"]
    return TunedOptimum(
        ((float(ref.base_width), base["lr"]), *lr),
        ((float(ref.base_width), base["weight_decay"]), *((float(w), ref.widths[w].weight_decay) for w in widths)),
        ref.base_width,
    )


def exponent(points: list[tuple[float, float]]) -> float | None:
    """The least-squares slope of log(value) against log(width): value ~ width^slope. 0 when every
    value is 0 (no weight decay); None with fewer than two widths or with some values 0."""
    if len(points) < 2:
        return None
    if all(v <= FLOOR for _, v in points):
        return 0.0
    if any(v <= FLOOR for _, v in points):
        return None
    xs = [math.log(w) for w, _ in points]
    ys = [math.log(v) for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else None


def differences(rule: RuleWidths, mup: RuleWidths, groups: tuple[str, ...], tolerance: float = 0.05) -> list[str]:
    """Where `rule` sets a group's lr or weight decay otherwise than muP at the widths both have
    (by more than `tolerance`, relative): one phrase each, with the range of the ratio."""
    phrases = []
    for group in groups:
        for index, what in ((0, "lr"), (1, "weight decay")):
            mine, theirs = dict(rule.values(group, index)), dict(mup.values(group, index))
            common = sorted(set(mine) & set(theirs))
            if not common:
                continue
            if all(mine[w] <= FLOOR and theirs[w] <= FLOOR for w in common):
                continue
            if any(theirs[w] <= FLOOR for w in common):
                phrases.append(f"{group} {what} {_law(mine, common)} where muP's is none")
                continue
            ratios = [mine[w] / theirs[w] for w in common]
            if max(abs(math.log(max(r, FLOOR))) for r in ratios) <= math.log1p(tolerance):
                continue
            lo, hi = min(ratios), max(ratios)
            scale = f"x{lo:.3g}" if math.isclose(lo, hi, rel_tol=tolerance) else f"x{lo:.3g} to x{hi:.3g}"
            phrases.append(f"{group} {what} {scale} muP's at widths {int(common[0])}-{int(common[-1])} "
                           f"({_law(mine, common)}; muP's {_law(theirs, common)})")
    return phrases


def law_text(points: list[tuple[float, float]]) -> str:
    """The power law of width that (width, value) points follow, in words."""
    slope = exponent(points)
    if slope is None:
        return "-" if len(points) < 2 else "varies"
    if all(v <= FLOOR for _, v in points):
        return "none"
    return "constant" if abs(slope) < 0.005 else f"~ width^{slope:+.2f}"


def _law(values: dict[float, float], widths: list[float]) -> str:
    return law_text([(w, values[w]) for w in widths])
