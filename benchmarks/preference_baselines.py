"""The preference task's baselines (DPO, IPO, SLiC, LRML) and controls (constant, anti-DPO,
reference-free DPO, SFT on chosen) against DPO, through the real sandbox: tier 1 (1 seed, the screen)
and tier 2 (3 paired seeds, held-out prompts). Writes one JSON line per (candidate, tier) to
benchmarks/preference/results.jsonl (appended; already measured pairs are skipped, so an
interrupted run resumes) and prints the markdown tables of benchmarks/README.md.

    .venv/bin/python benchmarks/preference_baselines.py [--tiers 1 2] [--report]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import torch

from optforge.agent.config import EvaluationConfig, SandboxConfig, cache_dir
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.evaluation.evaluate import evaluate
from optforge.agent.evaluation.runtime import code_commit, open_runner
from optforge.tasks.baselines import baseline_names, baseline_source
from optforge.tasks.preference.task import preference_task

KIND = "preference_loss"
ROOT = pathlib.Path(__file__).resolve().parent
RESULTS = ROOT / "preference" / "results.jsonl"
CONTROLS = ROOT.parent / "tasks" / "preference" / "controls"


def candidates() -> dict[str, str]:
    found = {name: baseline_source(KIND, name) for name in baseline_names(KIND)}
    for path in sorted(CONTROLS.glob("[a-z]*.py")):
        found[f"control: {path.stem}"] = path.read_text()
    return found


def measured() -> list[dict]:
    if not RESULTS.exists():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def run(tiers: list[int]) -> None:
    torch.set_num_threads(1)
    config = EvaluationConfig(sandbox=SandboxConfig())
    done = {(r["candidate"], r["tier"]) for r in measured()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open_runner(config.sandbox, cache_dir(), kind=KIND) as runner:
        cache = BaselineCache(cache_dir())
        for tier in tiers:
            for name, source in candidates().items():
                if (name, tier) in done:
                    continue
                started = time.perf_counter()
                ev = evaluate(source, KIND, tier, runner, config, cache)
                task = ev.tasks[0] if ev.tasks else None
                row = {
                    "candidate": name, "tier": tier, "status": ev.status, "error": ev.error,
                    "score": ev.score, "score_ci": ev.score_ci,
                    "auc": task.final if task else None, "auc_ci": task.final_ci if task else None,
                    "dpo_auc": task.reference_final if task else None,
                    "paired_diff_ci": task.paired_diff_ci if task else None,
                    "seed_aucs": task.seed_finals if task else None,
                    "frontier": task.frontier if task else None, "seeds": list(preference_task(tier).seeds),
                    "seconds": time.perf_counter() - started, "sandbox_seconds": task.seconds if task else None,
                    "code_commit": code_commit(),
                }
                with RESULTS.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(f"tier {tier} {name}: {ev.status} {ev.score} ({row['seconds']:.0f} s)", flush=True)


def report() -> None:
    rows = measured()
    for tier in sorted({r["tier"] for r in rows}):
        seeds = preference_task(tier).seeds
        print(f"\nTier {tier} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}: {', '.join(map(str, seeds))})\n")
        print("| loss | status | score vs DPO [95% CI] | AUC [95% CI] | AUC - DPO's [paired 95% CI] | KL / reward at beta 0.1, 0.3, 1, 3 | s |")
        print("|---|---|---|---|---|---|---|")
        for r in (r for r in rows if r["tier"] == tier):
            print(f"| {r['candidate']} | {r['status']} | {_num(r['score'], r['score_ci'])} | "
                  f"{_num(r['auc'], r['auc_ci'], '.4f')} | {_diff(r)} | {_points(r['frontier'])} | {r['seconds']:.0f} |")


def _num(value: float | None, ci: list | None, fmt: str = ".3f") -> str:
    if value is None:
        return "-"
    return f"{value:{fmt}}" + (f" [{ci[0]:{fmt}}, {ci[1]:{fmt}}]" if ci else "")


def _diff(r: dict) -> str:
    if r["auc"] is None or r["dpo_auc"] is None:
        return "-"
    return _num(r["auc"] - r["dpo_auc"], r["paired_diff_ci"], "+.4f")


def _points(frontier: list | None) -> str:
    return "; ".join(f"{kl:.1f} / {reward:+.3f}" for _, kl, reward in frontier) if frontier else "-"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiers", type=int, nargs="+", default=[1, 2], choices=(1, 2))
    parser.add_argument("--report", action="store_true", help="only print the tables from the results file")
    args = parser.parse_args()
    if not args.report:
        run(args.tiers)
    report()
