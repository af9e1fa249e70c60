"""The transfer study: how well does the tier-1 screen predict the held-out tier 2?

A fixed, stratified set of optimizer candidates (every bundled baseline, the modern ones included,
and archived children spread over the whole tier-1 range of the 200-candidate campaign, not only
its top) is evaluated on EVERY tier-1 task the study knows (the suite's and the candidates for it,
`proxy.study_tasks`) and on tier 2, with the same seeds for all (paired). From one run, any tier-1
suite and any aggregation can then be compared by its rank correlation with tier 2.

    .venv/bin/python benchmarks/transfer_study.py select      # writes the candidate set (once)
    .venv/bin/python benchmarks/transfer_study.py run         # resumable: skips finished candidates
    .venv/bin/python benchmarks/transfer_study.py report      # tables -> transfer_study/results.md

The set is a frozen snapshot (transfer_study/candidates/, baselines included): an instrument must
not drift when a bundled baseline is edited, so the study reads its own copies.

`run` appends one JSON line per candidate to transfer_study/results.jsonl, so a killed run loses at
most the candidate in flight, and candidates run in a fixed shuffled order so that a partial run is
still a spread sample. Choose tasks and aggregates from this study, never by reading how particular
candidates did on tier 2.

Statistics: Spearman and Kendall rank correlations between a tier-1 aggregate and the tier-2
aggregate over candidates, with 95% percentile bootstrap CIs (candidates resampled with
replacement, 2000 times). A task on which a candidate failed (diverged at every rate) enters as the
floor score: failing is the worst outcome, and a candidate is never dropped for it.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import random
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from extract_children import spread  # this folder: the scripts run as `python benchmarks/...`

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "transfer_study"
CANDIDATES = OUT / "candidates"
MANIFEST = OUT / "manifest.json"
RESULTS = OUT / "results.jsonl"
ARCHIVE = HERE / "campaigns" / "optimizer-mutate-200.tar.xz"
CHILDREN = HERE / "archived_children"
SPREAD_EXTRA = 12  # children of the 200-candidate campaign beyond the throughput mix, spread by score
ORDER_SEED = 13
BOOT = 2000

OLD_SUITE = ("illcond_quadratic", "logreg_cancer", "mlp_digits", "deep_tanh_digits", "teacher_student")
NEW_TASKS = ("cnn_digits", "resmlp_teacher", "code_transformer")
# The suites the study compares, declared before the study ran (after 4 of its candidates had
# been seen, and no per-candidate result was used to shape them): the suite is chosen among these
# by the lower bound of its Spearman CI (clipped aggregate), subject to the cost cap of the issue
# (no more than 2x the tier-1 cost per candidate before the redesign).
SUITES: dict[str, tuple[str, ...]] = {
    "old (5 tasks)": OLD_SUITE,
    "old without the quadratic": OLD_SUITE[1:],
    "without the quadratic, + code_transformer": (*OLD_SUITE[1:], "code_transformer"),
    "without the quadratic, + all three new": (*OLD_SUITE[1:], *NEW_TASKS),
    "new three + mlp_digits + teacher_student": ("mlp_digits", "teacher_student", *NEW_TASKS),
    "all 8": (*OLD_SUITE, *NEW_TASKS),
    # Declared at n = 20 (after the others were read): the issue asks the screen for a language
    # model, and the rule above then picked the old suite, which has none. Judge it knowing that.
    "old + code_transformer (declared at n = 20)": (*OLD_SUITE, "code_transformer"),
}
# The rule, written down at n = 20 of 48 (before the other 28 ran), as `choose` applies it:
# 1. eligible: a declared suite that holds a language-model task (the issue requires one in the
#    screen) and costs no more than COST_CAP x the old suite per candidate;
# 2. among those, the highest lower bound of the Spearman CI (clipped aggregate) wins, and a suite
#    within TIE of the best lower bound that is cheaper wins the tie;
# 3. the quadratic stays exactly when the eligible suite that wins holds it.
# `choose` also names the suite the rule would pick without the language-model requirement, so the
# price of that requirement is on the record.
LM_TASKS = ("code_transformer",)
COST_CAP = 2.0
TIE = 0.02

# -- selection ----------------------------------------------------------------------------------------

QUERY = """
SELECT c.id, c.name, c.source, t1.score,
       (SELECT t2.score FROM evaluations t2 WHERE t2.candidate_id = c.id AND t2.tier = 2) AS tier2
FROM candidates c
JOIN evaluations t1 ON t1.candidate_id = c.id AND t1.tier = 1 AND t1.reused_from IS NULL
WHERE c.proposer != 'seed' AND t1.score IS NOT NULL
ORDER BY t1.score, c.id
"""


def select() -> None:
    """Write the candidate set: baselines, the throughput mix's 20 children, every child the campaign
    took to tier 2, and more children spread evenly over its tier-1 scores."""
    from optforge.tasks.baselines import baseline_names, baseline_source

    CANDIDATES.mkdir(parents=True, exist_ok=True)
    chosen: list[dict[str, Any]] = []

    def add(label: str, origin: str, source: str, old_tier1: float | None) -> None:
        if any(c["label"] == label for c in chosen):
            return
        (CANDIDATES / f"{label}.py").write_text(source)
        chosen.append({"label": label, "origin": origin, "old_tier1": old_tier1})

    for name in baseline_names("optimizer"):
        add(f"baseline_{name}", "baseline", baseline_source("optimizer", name), None)
    for child in json.loads((CHILDREN / "manifest.json").read_text()):
        add(child["file"][:-3], "throughput mix", (CHILDREN / child["file"]).read_text(), child["tier1_score"])
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(ARCHIVE) as tar:
            tar.extractall(tmp, filter="data")
        (db,) = pathlib.Path(tmp).glob("*/archive.sqlite")
        rows = sqlite3.connect(db).execute(QUERY).fetchall()
    taken = {c["label"].rsplit("_", 1)[-1] for c in chosen}
    for cid, name, source, score, tier2 in rows:
        if tier2 is not None:
            add(f"{name.replace('-', '_')}_{cid[:8]}", "campaign tier 2", source, round(score, 4))
    rest = [r for r in rows if r[0][:8] not in taken and r[4] is None]
    for cid, name, source, score, _ in spread(rest, SPREAD_EXTRA):
        add(f"{name.replace('-', '_')}_{cid[:8]}", "campaign spread", source, round(score, 4))
    MANIFEST.write_text(json.dumps(chosen, indent=1) + "\n")
    print(f"{len(chosen)} candidates written to {CANDIDATES}")


# -- running ------------------------------------------------------------------------------------------


def _task_json(task: Any) -> dict[str, Any]:
    return {"name": task.name, "status": task.status, "score": task.score, "score_ci": task.score_ci,
            "lr": task.lr, "reference_lr": task.reference_lr, "seconds": round(task.seconds, 2),
            "seed_finals": list(task.seed_finals), "error": task.error}


def run(workers: int, limit: int | None) -> None:
    from optforge.agent.config import EvaluationConfig, SandboxConfig, cache_dir
    from optforge.agent.evaluation.baseline_cache import BaselineCache
    from optforge.agent.evaluation.evaluate import contract_rejection, evaluate_tasks, run_tier0
    from optforge.agent.evaluation.runtime import open_runner
    from optforge.tasks.proxy import study_tasks

    manifest = json.loads(MANIFEST.read_text())
    done = {json.loads(line)["label"] for line in RESULTS.read_text().splitlines()} if RESULTS.exists() else set()
    order = [c for c in manifest if c["label"] not in done]
    random.Random(ORDER_SEED).shuffle(order)
    config = EvaluationConfig(sandbox=SandboxConfig(workers=workers))
    cache = BaselineCache(cache_dir())
    with open_runner(config.sandbox, cache_dir()) as runner:
        for item in order[:limit]:
            source = (CANDIDATES / f"{item['label']}.py").read_text()
            started = time.perf_counter()
            record: dict[str, Any] = {"label": item["label"], "origin": item["origin"], "old_tier1": item["old_tier1"]}
            screened = contract_rejection(source, "optimizer", 1) or run_tier0(source, "optimizer", runner, config)
            record["tier0"] = screened.status
            record["batching"] = screened.batching
            if screened.status == "ok":
                for tier in (1, 2):
                    result = evaluate_tasks(source, "optimizer", tier, screened, runner, config, cache,
                                            tasks=study_tasks(tier, "optimizer"))
                    record[f"tier{tier}"] = [_task_json(t) for t in result.tasks]
                    record[f"tier{tier}_versions"] = result.task_versions
            record["seconds"] = round(time.perf_counter() - started, 1)
            with RESULTS.open("a") as out:
                out.write(json.dumps(record) + "\n")
            print(f"{item['label']}: {screened.status} in {record['seconds']} s", flush=True)


# -- analysis -----------------------------------------------------------------------------------------


def _scores(record: dict[str, Any], tier: int, names: list[str] | None = None) -> dict[str, float]:
    from optforge.tasks.scoring import SCORE_FLOOR

    out = {}
    for task in record.get(f"tier{tier}", []):
        if names is None or task["name"] in names:
            out[task["name"]] = task["score"] if task["score"] is not None else SCORE_FLOOR
    return out


def geomean(scores: list[float]) -> float:
    return float(np.exp(np.mean(np.log(scores))))


def clipped(bound: float) -> Callable[[list[float]], float]:
    def agg(scores: list[float]) -> float:
        return float(np.exp(np.mean(np.clip(np.log(scores), -math.log(bound), math.log(bound)))))
    return agg


def median(scores: list[float]) -> float:
    return float(np.median(scores))


def trimmed(scores: list[float]) -> float:
    """Geometric mean without the best and the worst task."""
    logs = sorted(np.log(scores))
    return float(np.exp(np.mean(logs[1:-1]))) if len(logs) > 2 else geomean(scores)


AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "geomean": geomean, "clip 1.25": clipped(1.25), "clip 1.5": clipped(1.5), "clip 2": clipped(2.0),
    "median": median, "trimmed geomean": trimmed,
}


def _spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of [B, n] arrays (average ranks for ties)."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=-1), rankdata(y, axis=-1)
    rx, ry = rx - rx.mean(-1, keepdims=True), ry - ry.mean(-1, keepdims=True)
    return (rx * ry).sum(-1) / np.sqrt((rx**2).sum(-1) * (ry**2).sum(-1))


def _kendall(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair of [B, n] arrays."""
    sx = np.sign(x[..., :, None] - x[..., None, :])
    sy = np.sign(y[..., :, None] - y[..., None, :])
    return (sx * sy).sum((-1, -2)) / np.sqrt((sx**2).sum((-1, -2)) * (sy**2).sum((-1, -2)))


def correlation_ci(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Spearman and Kendall (tau-b) with percentile bootstrap CIs over candidates (resamples
    where either side is constant are undefined and left out)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), (BOOT, len(x)))
    with np.errstate(invalid="ignore", divide="ignore"):
        boot_r, boot_t = _spearman(x[idx], y[idx]), _kendall(x[idx], y[idx])
        rho, tau = float(_spearman(x, y)), float(_kendall(x, y))
    return {"n": len(x), "spearman": rho, "spearman_ci": tuple(np.nanpercentile(boot_r, [2.5, 97.5])),
            "kendall": tau, "kendall_ci": tuple(np.nanpercentile(boot_t, [2.5, 97.5]))}


def _fmt(c: dict[str, Any]) -> str:
    lo, hi = c["spearman_ci"]
    klo, khi = c["kendall_ci"]
    return f"{c['spearman']:+.2f} [{lo:+.2f}, {hi:+.2f}] | {c['kendall']:+.2f} [{klo:+.2f}, {khi:+.2f}]"


def analyse(records: list[dict[str, Any]], suite: list[str]) -> dict[str, Any]:
    """Correlations of tier-1 aggregates (over `suite`) and of single tasks with the tier-2 aggregate
    (the production aggregate, clipped geometric mean, over every tier-2 task)."""
    from optforge.tasks.scoring import AGGREGATE_CLIP

    usable = [r for r in records if r.get("tier1") and r.get("tier2")]
    tier2 = np.array([clipped(AGGREGATE_CLIP)(list(_scores(r, 2).values())) for r in usable])
    result: dict[str, Any] = {"aggregates": {}, "tasks": {}, "tier2_tasks": {}}
    for name, agg in AGGREGATES.items():
        tier1 = np.array([agg(list(_scores(r, 1, suite).values())) for r in usable])
        result["aggregates"][name] = correlation_ci(tier1, tier2)
    for task in sorted({t["name"] for r in usable for t in r["tier1"]}):
        x = np.array([_scores(r, 1).get(task, 0.01) for r in usable])
        result["tasks"][task] = correlation_ci(x, tier2)
    for task in sorted({t["name"] for r in usable for t in r["tier2"]}):
        y = np.array([_scores(r, 2).get(task, 0.01) for r in usable])
        result["tier2_tasks"][task] = correlation_ci(y, tier2)
    return result


def _suite_cost(usable: list[dict[str, Any]], names: tuple[str, ...]) -> float:
    return float(np.mean([sum(t["seconds"] for t in r["tier1"] if t["name"] in names) for r in usable]))


def choose(records: list[dict[str, Any]]) -> tuple[str, str]:
    """The declared rule (above SUITES): (its pick, its pick without the language-model requirement)."""
    from optforge.tasks.scoring import AGGREGATE_CLIP

    usable = [r for r in records if r.get("tier1") and r.get("tier2")]
    budget = COST_CAP * _suite_cost(usable, OLD_SUITE)
    rows = []
    for label, names in SUITES.items():
        cost = _suite_cost(usable, names)
        if cost <= budget:
            lower = analyse(records, list(names))["aggregates"][f"clip {AGGREGATE_CLIP:g}"]["spearman_ci"][0]
            rows.append((label, float(lower), cost, any(t in LM_TASKS for t in names)))

    def best(pool: list[tuple[str, float, float, bool]]) -> str:
        top = max(lower for _, lower, _, _ in pool)
        return min((r for r in pool if r[1] >= top - TIE), key=lambda r: r[2])[0]

    return best([r for r in rows if r[3]]), best(rows)


def report(suite: list[str]) -> None:
    from optforge.tasks.scoring import AGGREGATE_CLIP

    records = [json.loads(line) for line in RESULTS.read_text().splitlines()]
    usable = [r for r in records if r.get("tier1") and r.get("tier2")]
    lines = [f"# Transfer study: {len(usable)} candidates with both tiers ({len(records)} run)", ""]
    for label, names in (("old suite", list(OLD_SUITE)), ("chosen suite", suite)):
        found = analyse(records, names)
        lines += [f"## Tier-1 aggregate over the {label} ({', '.join(names)}) vs tier 2", "",
                  "| tier-1 aggregate | Spearman [95% CI] | Kendall [95% CI] |", "|---|---|---|"]
        lines += [f"| {name} | {_fmt(c)} |" for name, c in found["aggregates"].items()]
        lines.append("")
    lines += [f"## Declared suites, clipped aggregate (clip {AGGREGATE_CLIP}) vs tier 2", "",
              "| suite | tasks | Spearman [95% CI] | Kendall [95% CI] | mean tier-1 s/candidate |",
              "|---|---|---|---|---|"]
    for label, names in SUITES.items():
        c = analyse(records, list(names))["aggregates"][f"clip {AGGREGATE_CLIP:g}"]
        secs = _suite_cost(usable, names)
        lines.append(f"| {label} | {len(names)} | {_fmt(c)} | {secs:.1f} |")
    lines.append("")
    picked, unconstrained = choose(records)
    lines += [f"Declared rule's pick: **{picked}**. Without the language-model requirement: {unconstrained}.", ""]
    found = analyse(records, suite)
    lines += [f"## Each tier-1 task alone vs the tier-2 aggregate (clipped geomean, clip {AGGREGATE_CLIP})", "",
              "| task | Spearman [95% CI] | Kendall [95% CI] | mean s/candidate |", "|---|---|---|---|"]
    for task, c in found["tasks"].items():
        secs = [t["seconds"] for r in usable for t in r["tier1"] if t["name"] == task]
        lines.append(f"| {task} | {_fmt(c)} | {np.mean(secs):.1f} |")
    lines += ["", "## Each tier-2 task vs the tier-2 aggregate", "",
              "| task | Spearman [95% CI] | Kendall [95% CI] | mean s/candidate |", "|---|---|---|---|"]
    for task, c in found["tier2_tasks"].items():
        secs = [t["seconds"] for r in usable for t in r["tier2"] if t["name"] == task]
        lines.append(f"| {task} | {_fmt(c)} | {np.mean(secs):.1f} |")
    lines += ["", "## Candidates", "", "| candidate | origin | old tier 1 | tier 1 (chosen suite) | tier 2 |",
              "|---|---|---|---|---|"]
    agg = clipped(AGGREGATE_CLIP)
    for r in sorted(usable, key=lambda r: -agg(list(_scores(r, 2).values()))):
        t1 = agg(list(_scores(r, 1, suite).values()))
        t2 = agg(list(_scores(r, 2).values()))
        lines.append(f"| {r['label']} | {r['origin']} | {r['old_tier1']} | {t1:.3f} | {t2:.3f} |")
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("select")
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--workers", type=int, default=2)
    run_parser.add_argument("--limit", type=int, default=None, help="at most this many candidates now")
    report_parser = sub.add_parser("report")
    report_parser.add_argument("--suite", nargs="+", default=None, help="tier-1 tasks (default: the suite)")
    args = parser.parse_args()
    if args.command == "select":
        select()
    elif args.command == "run":
        run(args.workers, args.limit)
    else:
        from optforge.tasks.proxy import tasks_for

        report(args.suite or [t.name for t in tasks_for(1, "optimizer")])


if __name__ == "__main__":
    main()
