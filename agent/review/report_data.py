"""The numbers behind the report's charts, computed from an ArchiveView (agent/review/view.py).

x axes count candidates in the order stored (the order the campaign made them; seeds first), so
the charts of one report line up. Nothing here draws or escapes: agent/review/report.py does.
"""

from __future__ import annotations

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
