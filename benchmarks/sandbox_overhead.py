"""Per-candidate cost of a tier-1 evaluation, four ways, measured in one run (this machine is noisy:
compare the ratios, not the absolute numbers across runs):

1. in-process: the trusted job function called directly, no sandbox (what OpenEvolve does);
2. optforge's warm process sandbox: bubblewrap workers with torch and the data loaded once, each job
   in a forked child;
3. a fresh `python` process per training job (what ShinkaEvolve/EoH-style harnesses do: spawn an
   interpreter, import torch, load data, train, exit). It loads only the data, without the warm
   workers' extra step of exercising every task once;
4. optforge's Docker sandbox: the same warm worker inside one hardened container (`--sandbox docker`),
   results coming back inline over the container's attach stream.

The ways are interleaved candidate by candidate, so load on a shared machine hits them alike. The
Docker runner's start (construction until its worker is ready: container start, torch import,
warm-up) and a bare container start (`true` in the image, start to exit) are reported apart: they
are paid once per worker, not per candidate. Each way runs the same tier-1 jobs (tier 0 plus one job per task
with the whole learning-rate grid batched, as tier 1 runs a baseline) of the same candidates
on ONE worker, so the per-candidate wall times are directly comparable. Run:

    .venv/bin/python benchmarks/sandbox_overhead.py [--candidates adam lion sgd] [--seeds 8]
        [--skip-fresh] [--skip-docker]

Docker needs a running engine and the image (`optforge sandbox build --offline`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

import torch

from optforge.agent.config import SweepConfig, cache_dir
from optforge.agent.evaluation.runtime import WARMUP, train_data_dir
from optforge.agent.evaluation.sweeps import ENTRY
from optforge.sandbox import DockerRunner, Job, ProcessRunner, Runner
from optforge.sandbox.docker_image import connect, default_image
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
    for task in tasks_for(1, "optimizer"):  # the whole grid in one job, as tier 1 runs a baseline
        payloads.append({"action": "train", "kind": "optimizer", "source": source, "task": task.name,
                         "lrs": lrs, "seeds": list(range(seeds)), "batching": "vmap_lr"})
    return payloads


def in_process(payloads: list[dict[str, Any]], data_dir: pathlib.Path) -> float:
    task_jobs.warm(data_dir)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for payload in payloads:
            task_jobs.run_job(payload, pathlib.Path(scratch))
    return time.perf_counter() - start


def warm_sandbox(runner: Runner, payloads: list[dict[str, Any]]) -> tuple[float, float]:
    """(wall seconds, of which the sandbox's own overhead): the overhead is the host's time per
    job minus the job's own time as its worker measured it (fork to exit), so it counts the
    protocol, the fork, moving the results and the clean-up, and not the training, which is what
    a CPU share on a loaded machine changes most."""
    start = time.perf_counter()
    inside = 0.0
    for payload in payloads:
        result = runner.run(Job(ENTRY, payload))
        assert result.status == "ok", result.error
        inside += result.wall_seconds
    total = time.perf_counter() - start
    return total, total - inside


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
    parser.add_argument("--skip-docker", action="store_true", help="skip way 4 (needs the engine and image)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data_dir = train_data_dir(cache_dir())
    with contextlib.ExitStack() as stack:
        runner = stack.enter_context(ProcessRunner(
            workers=1, warmup=WARMUP, data_dir=data_dir, hidden_paths=heldout_source_paths()))
        docker = None
        if not args.skip_docker:
            docker, starts = start_docker(data_dir)
            stack.enter_context(docker)
            print(json.dumps(starts), flush=True)
        rows = []
        for name in args.candidates:
            payloads = tier1_payloads(name, args.seeds)
            row = {"candidate": name, "jobs": len(payloads)}
            row["in_process_s"] = in_process(payloads, data_dir)
            row["sandbox_s"], row["sandbox_overhead"] = warm_sandbox(runner, payloads)
            if docker is not None:
                row["docker_s"], row["docker_overhead"] = warm_sandbox(docker, payloads)
            if not args.skip_fresh:
                row["fresh_process_s"] = fresh_processes(payloads, data_dir)
            rows.append(row)
            print(json.dumps(row), flush=True)
    summarize(rows, runner.isolation)
    if docker is not None:
        print(f"docker start: runner ready in {starts['runner_start_s']:.1f} s (one worker: container, "
              f"torch import, warm-up); bare container start-to-exit {starts['bare_container_s']:.2f} s")


def start_docker(data_dir: pathlib.Path) -> tuple[DockerRunner, dict[str, float]]:
    """The Docker runner (one worker) and what starting costs, timed apart from the jobs."""
    bare = bare_container_seconds(default_image())
    start = time.perf_counter()
    docker = DockerRunner(workers=1, warmup=WARMUP, data_dir=data_dir,
                          hidden_paths=heldout_source_paths(), campaign="benchmark-sandbox-overhead")
    return docker, {"runner_start_s": time.perf_counter() - start, "bare_container_s": bare}


def bare_container_seconds(image: str) -> float:
    """Create, start, wait for and remove a container running `true`: Docker's own floor, without
    Python (the second of two runs, so the image's layers are in the page cache)."""
    client = connect()
    seconds = 0.0
    for _ in range(2):
        start = time.perf_counter()
        container = client.containers.create(image, ["true"], network_mode="none", read_only=True,
                                             user="65534:65534")
        try:  # removed even when interrupted (run(remove=True) can leave a created container)
            container.start()
            container.wait()
        finally:
            container.remove(force=True)
        seconds = time.perf_counter() - start
    return seconds


def summarize(rows: list[dict[str, Any]], isolation: str) -> None:
    n = len(rows)
    mean = {k: sum(r[k] for r in rows) / n for k in rows[0] if k.endswith("_s")}
    print(f"\nper-candidate tier-1 wall time, mean of {n} candidates, one worker (sandbox isolation: {isolation})")
    print("| way | seconds per candidate | ratio to in-process |")
    print("|---|---|---|")
    labels = {"in_process_s": "(1) in-process, no sandbox", "sandbox_s": "(2) warm process sandbox",
              "fresh_process_s": "(3) fresh python process per job",
              "docker_s": "(4) warm Docker container"}
    for key, value in mean.items():
        print(f"| {labels[key]} | {value:.2f} | {value / mean['in_process_s']:.3f} |")
    if "fresh_process_s" in mean:
        print(f"\n(3)/(2) = {mean['fresh_process_s'] / mean['sandbox_s']:.1f}x")
    if "docker_s" in mean:
        print(f"(4)/(2) = {mean['docker_s'] / mean['sandbox_s']:.3f}")
    jobs = sum(r["jobs"] for r in rows) / n
    for key, label in (("sandbox_overhead", "(2)"), ("docker_overhead", "(4)")):
        if key in rows[0]:
            per_job = sum(r[key] for r in rows) / n / jobs
            print(f"{label} sandbox overhead per job (host time minus the job's own): {per_job * 1000:.0f} ms")
    print(f"tier-1 candidates per hour on one worker: {3600 / mean['sandbox_s']:.0f}")


if __name__ == "__main__":
    main()
