"""The scaling task's baselines (constant, muP, muP with weight decay ~ sqrt(width), ~ width) against
each width's tuned optimum, through the real sandbox: widths 64/128/256 at three paired seeds (the
spec's comparison; tier 1 screens them at one) and tier 2 (width 512, three paired seeds). Writes one
JSON line per (candidate, task) to benchmarks/scaling/results.jsonl (appended; measured pairs are
skipped, so an interrupted run resumes) and prints the markdown tables of benchmarks/README.md,
with each rule's paired gap difference to muP.

    .venv/bin/python benchmarks/scaling_baselines.py [--tasks screen3 heldout] [--candidate FILE ...] [--report]

`--candidate FILE` adds rule files (a campaign's best, exported) to the baselines.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time

import numpy as np
import torch

from optforge.agent.config import EvaluationConfig, SandboxConfig, cache_dir
from optforge.agent.evaluation.evaluate import run_tier0
from optforge.agent.evaluation.runtime import code_commit, open_runner
from optforge.agent.evaluation.scaling import evaluate_scaling
from optforge.tasks.baselines import baseline_names, baseline_source
from optforge.tasks.scaling.task import ScalingTask, scaling_task
from optforge.tasks.scoring import mean_ci

KIND = "scaling_rule"
ROOT = pathlib.Path(__file__).resolve().parent
RESULTS = ROOT / "scaling" / "results.jsonl"
TASKS = {
    "screen3": dataclasses.replace(scaling_task(1), name="stdlib_resmlp_3seeds", seeds=(0, 1, 2),
                                   description="tier 1's widths at three paired seeds"),
    "heldout": scaling_task(2),
}


def measured() -> list[dict]:
    if not RESULTS.exists():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def run(task_keys: list[str], files: list[pathlib.Path]) -> None:
    torch.set_num_threads(1)
    config = EvaluationConfig(sandbox=SandboxConfig())
    candidates = {name: baseline_source(KIND, name) for name in baseline_names(KIND)}
    candidates.update({f"file: {path.stem}": path.read_text() for path in files})
    done = {(r["candidate"], r["task"]) for r in measured()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open_runner(config.sandbox, cache_dir(), kind=KIND) as runner:
        for key in task_keys:
            task: ScalingTask = TASKS[key]
            for name, source in candidates.items():
                if (name, task.name) in done:
                    continue
                started = time.perf_counter()
                screened = run_tier0(source, KIND, runner, config)
                ev = evaluate_scaling(source, KIND, task.tier, screened, runner, config, task=task) \
                    if screened.status == "ok" else screened
                row = {
                    "candidate": name, "task": task.name, "status": ev.status, "error": ev.error,
                    "score": ev.score, "score_ci": ev.score_ci, "seeds": list(task.seeds),
                    "widths": {t.name.rpartition("_w")[2]: {
                        "loss": t.final, "tuned": t.reference_final, "gap_ci": t.paired_diff_ci,
                        "seed_losses": t.seed_finals, "hyperparameters": t.hyperparameters, "seconds": t.seconds,
                    } for t in ev.tasks},
                    "seconds": time.perf_counter() - started, "code_commit": code_commit(),
                }
                with RESULTS.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(f"{task.name} {name}: {ev.status} {ev.score} ({row['seconds']:.0f} s)", flush=True)


def report() -> None:
    rows = measured()
    for task in dict.fromkeys(r["task"] for r in rows):
        here = [r for r in rows if r["task"] == task]
        mup = next((r for r in here if r["candidate"] == "mup"), None)
        print(f"\n{task} (seeds {', '.join(map(str, here[0]['seeds']))})\n")
        widths = list(here[0]["widths"])
        print("| rule | score [95% CI] | mean gap, nats | " + " | ".join(f"gap at {w} [95% CI]" for w in widths)
              + " | gap - muP's, paired [95% CI] | s |")
        print("|---|---|---|" + "---|" * len(widths) + "---|---|")
        for r in here:
            if r["status"] != "ok":
                print(f"| {r['candidate']} | {r['status']}: {r['error']} |" + " |" * (len(widths) + 3))
                continue
            gaps = [r["widths"][w]["loss"] - r["widths"][w]["tuned"] for w in widths]
            cells = [_num(g, r["widths"][w]["gap_ci"], "+.4f") for g, w in zip(gaps, widths, strict=True)]
            print(f"| {r['candidate']} | {_num(r['score'], r['score_ci'], '.4f')} | {np.mean(gaps):+.4f} | "
                  + " | ".join(cells) + f" | {_versus(r, mup, widths)} | {r['seconds']:.0f} |")


def _versus(row: dict, mup: dict | None, widths: list[str]) -> str:
    """The rule's mean gap minus muP's, paired by seed (the seeds share init and data)."""
    if mup is None or mup["status"] != "ok" or row["candidate"] == "mup":
        return "-"
    per_seed = np.mean([np.array(row["widths"][w]["seed_losses"]) - np.array(mup["widths"][w]["seed_losses"])
                        for w in widths], axis=0)
    lo, hi = mean_ci(per_seed)
    return f"{per_seed.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"


def _num(value: float | None, ci: list | None, fmt: str) -> str:
    if value is None:
        return "-"
    return f"{value:{fmt}}" + (f" [{ci[0]:{fmt}}, {ci[1]:{fmt}}]" if ci else "")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--candidate", type=pathlib.Path, nargs="*", default=[], help="rule files to add")
    parser.add_argument("--report", action="store_true", help="only print the tables from the results file")
    args = parser.parse_args()
    if not args.report:
        run(args.tasks, args.candidate)
    report()
