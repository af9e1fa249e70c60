"""Per-candidate cost of a tier-1 evaluation, three ways, measured in one run (this machine is noisy:
compare the ratios, not the absolute numbers across runs):

1. in-process: the trusted job function called directly, no sandbox (what OpenEvolve does);
2. optforge's warm process sandbox: bubblewrap workers with torch and the data loaded once, each job
   in a forked child;
3. a fresh `python` process per training job (what ShinkaEvolve/EoH-style harnesses do: spawn an
   interpreter, import torch, load data, train, exit). It loads only the data, without the warm
   workers' extra step of exercising every task once.

Each way runs the same tier-1 jobs (tier 0 plus every task x learning rate) of the same candidates
on ONE worker, so the per-candidate wall times are directly comparable. Run:

    .venv/bin/python benchmarks/sandbox_overhead.py [--candidates adam lion sgd] [--seeds 8]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

import torch

from optforge.agent.config import SweepConfig, cache_dir
from optforge.agent.runtime import WARMUP, train_data_dir
from optforge.agent.sweeps import ENTRY
from optforge.sandbox import Job, ProcessRunner
from optforge.tasks import jobs as task_jobs
from optforge.tasks.baselines import baseline_source
from optforge.tasks.contracts import declared_hparams
from optforge.tasks.data import heldout_source_paths
from optforge.tasks.proxy import tasks_for

FRESH_PROCESS = """
import json, pathlib, sys, torch
torch.set_num_threads(1)
from optforge.tasks import jobs
jobs.load_train_splits(sys.argv[1])
tensors, meta = jobs.run_job(json.loads(sys.argv[2]), pathlib.Path(sys.argv[3]))
print(len(tensors))
"""


def tier1_payloads(name: str, seeds: int) -> list[dict[str, Any]]:
    source = baseline_source("optimizer", name)
    lrs = SweepConfig().learning_rates(declared_hparams(source)["lr"])
    payloads: list[dict[str, Any]] = [{"action": "tier0", "kind": "optimizer", "source": source}]
    for task in tasks_for(1, "optimizer"):
        for lr in lrs:
            payloads.append({"action": "train", "kind": "optimizer", "source": source, "task": task.name,
                             "lr": lr, "seeds": list(range(seeds)), "batched": True})
    return payloads


def in_process(payloads: list[dict[str, Any]], data_dir: pathlib.Path) -> float:
    task_jobs.warm(data_dir)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for payload in payloads:
            task_jobs.run_job(payload, pathlib.Path(scratch))
    return time.perf_counter() - start


def warm_sandbox(runner: ProcessRunner, payloads: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for payload in payloads:
        result = runner.run(Job(ENTRY, payload))
        assert result.status == "ok", result.error
    return time.perf_counter() - start


def fresh_processes(payloads: list[dict[str, Any]], data_dir: pathlib.Path) -> float:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for payload in payloads:
            subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(data_dir), json.dumps(payload), scratch],
                           check=True, capture_output=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", nargs="+", default=["adam", "lion", "sgd"])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--skip-fresh", action="store_true", help="skip way 3 (the slowest)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data_dir = train_data_dir(cache_dir())
    rows = []
    with ProcessRunner(workers=1, warmup=WARMUP, data_dir=data_dir, hidden_paths=heldout_source_paths()) as runner:
        for name in args.candidates:
            payloads = tier1_payloads(name, args.seeds)
            row = {"candidate": name, "jobs": len(payloads)}
            row["in_process_s"] = in_process(payloads, data_dir)
            row["sandbox_s"] = warm_sandbox(runner, payloads)
            if not args.skip_fresh:
                row["fresh_process_s"] = fresh_processes(payloads, data_dir)
            rows.append(row)
            print(json.dumps(row), flush=True)
    summarize(rows, runner.isolation)


def summarize(rows: list[dict[str, Any]], isolation: str) -> None:
    n = len(rows)
    mean = {k: sum(r[k] for r in rows) / n for k in rows[0] if k.endswith("_s")}
    print(f"\nper-candidate tier-1 wall time, mean of {n} candidates, one worker (sandbox isolation: {isolation})")
    print("| way | seconds per candidate | ratio to in-process |")
    print("|---|---|---|")
    labels = {"in_process_s": "(1) in-process, no sandbox", "sandbox_s": "(2) warm process sandbox",
              "fresh_process_s": "(3) fresh python process per job"}
    for key, value in mean.items():
        print(f"| {labels[key]} | {value:.2f} | {value / mean['in_process_s']:.3f} |")
    if "fresh_process_s" in mean:
        print(f"\n(3)/(2) = {mean['fresh_process_s'] / mean['sandbox_s']:.1f}x")
    print(f"tier-1 candidates per hour on one worker: {3600 / mean['sandbox_s']:.0f}")


if __name__ == "__main__":
    main()
