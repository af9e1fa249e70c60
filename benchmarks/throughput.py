"""Tier-1 evaluation throughput on a fixed mix, the old evaluation path against the new, in one run.

The mix: the 8 bundled optimizer baselines and the 20 archived children of
benchmarks/archived_children (10 that the old path ran stacked, 10 it had to loop over seed by
seed). Each candidate is evaluated at tier 1 (tier 0, then 5 tasks, 8 seeds, the 7-point sweep with
edge extensions) with the default config, 2 workers and the bubblewrap sandbox, by every path in
turn, candidate by candidate, so load on a shared machine hits the paths alike.

Paths:
  new      this checkout (batching chosen by tier 0: all seeds and learning rates in one job)
  vmap     this checkout capped at `max_batching = "vmap"` (a job per learning rate)
  loop     this checkout capped at `max_batching = "loop"` (one seed at a time)
  ray      this checkout as `new`, its jobs on a private local Ray instance with one single-CPU
           actor per worker, each owning a warm bubblewrap worker (the Ray executor's overhead)
  old      another revision of optforge (--old-rev, default the commit before batching modes),
           run from a git worktree in a child process: stacked seeds for batch-safe candidates,
           the per-seed loop for the rest, a job per learning rate

    .venv/bin/python benchmarks/throughput.py [--paths new old] [--old-rev 7ecf7e8] [--json FILE]

Each path's AdamW reference sweeps are computed first, in a cache of their own, and not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
CHILDREN = HERE / "archived_children"
DEFAULT_OLD_REV = "7ecf7e8"  # main before evaluation batched members under vmap
CAPS = {"new": "vmap_lr", "vmap": "vmap", "loop": "loop", "ray": "vmap_lr"}
EXECUTORS = {"ray": "ray"}  # paths whose jobs go through an executor other than the local pool


def mix() -> list[dict[str, Any]]:
    """The fixed mix: (label, group, source) of every candidate, baselines first."""
    from optforge.tasks.baselines import baseline_names, baseline_source

    items = [{"label": name, "group": "baseline", "source": baseline_source("optimizer", name)}
             for name in baseline_names("optimizer")]
    for child in json.loads((CHILDREN / "manifest.json").read_text()):
        group = "child, batch-safe before" if child["batch_safe_in_archive"] else "child, not batch-safe before"
        items.append({"label": child["file"][:-3], "group": group,
                      "source": (CHILDREN / child["file"]).read_text()})
    return items


# -- one path's evaluator: a warm runner and a cache, fed one candidate at a time ---------------------


def serve(cap: str | None, cache: pathlib.Path, workers: int, executor: str | None) -> None:
    """Evaluate the candidates that arrive on stdin (one JSON source per line) and print one JSON
    result line each; the first line printed says the runner is warm and the references cached.
    Runs in this process's optforge, which is the old revision's when PYTHONPATH points at it."""
    from optforge.agent.config import EvaluationConfig, SandboxConfig
    from optforge.agent.evaluation.baseline_cache import BaselineCache
    from optforge.agent.evaluation.evaluate import evaluate
    from optforge.agent.evaluation.runtime import open_runner
    from optforge.tasks.baselines import baseline_source

    extra: dict[str, Any] = {"max_batching": cap} if cap else {}
    if executor is not None:
        from optforge.agent.config import ExecutorConfig

        extra["executor"] = ExecutorConfig(engine=executor)
    config = EvaluationConfig(sandbox=SandboxConfig(workers=workers), **extra)
    with open_runner(config.sandbox, cache, **({"executor": config.executor} if executor else {})) as runner:
        baselines = BaselineCache(cache)
        started = time.perf_counter()
        evaluate(baseline_source("optimizer", "adamw"), "optimizer", 1, runner, config, baselines)
        print(json.dumps({"ready": time.perf_counter() - started}), flush=True)
        for line in sys.stdin:
            source = json.loads(line)
            started = time.perf_counter()
            ev = evaluate(source, "optimizer", 1, runner, config, baselines)
            batching = getattr(ev, "batching", None)
            if batching is None:  # the old path: stacked or the per-seed loop
                batching = "stacked" if getattr(ev, "batch_safe", False) else "loop (old)"
            print(json.dumps({"seconds": time.perf_counter() - started, "status": ev.status,
                              "score": ev.score, "batching": batching}), flush=True)


@contextlib.contextmanager
def old_checkout(rev: str) -> Iterator[pathlib.Path]:
    """A PYTHONPATH entry under which `import optforge` is revision `rev` of this repository."""
    with tempfile.TemporaryDirectory(prefix="optforge-old-") as tmp:
        tree, farm = pathlib.Path(tmp) / "tree", pathlib.Path(tmp) / "path"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev],
                       check=True, capture_output=True)
        try:
            package = farm / "optforge"
            package.mkdir(parents=True)
            (package / "__init__.py").symlink_to(tree / "agent" / "_root" / "__init__.py")
            for part in ("agent", "sandbox", "tasks", "archive"):
                (package / part).symlink_to(tree / part)
            yield farm
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                           check=False, capture_output=True)


class Evaluator:
    """One path: a child process running `serve`."""

    def __init__(self, name: str, cache: pathlib.Path, workers: int, pythonpath: pathlib.Path | None):
        env = None
        if pythonpath is not None:
            import os

            env = {**os.environ, "PYTHONPATH": str(pythonpath)}
        argv = [sys.executable, str(pathlib.Path(__file__).resolve()), "--serve", "--cache", str(cache),
                "--workers", str(workers)]
        if name in CAPS:
            argv += ["--cap", CAPS[name]]
        if name in EXECUTORS:
            argv += ["--executor", EXECUTORS[name]]
        self.name = name
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.ready = self._read()["ready"]

    def evaluate(self, source: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(source) + "\n")
        self.process.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} evaluator exited (code {self.process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=120)


# -- the table -------------------------------------------------------------------------------------


def summarize(results: dict[str, list[dict[str, Any]]], items: list[dict[str, Any]]) -> str:
    lines = ["| path | candidates per hour | median s | slowest tenth / median | "
             + " | ".join(f"mean s: {g}" for g in _groups(items)) + " |",
             "|---" * (4 + len(_groups(items))) + "|"]
    for path, rows in results.items():
        seconds = [r["seconds"] for r in rows]
        median = statistics.median(seconds)
        tenth = sorted(seconds)[-max(1, len(seconds) // 10):]
        groups = [statistics.mean(r["seconds"] for r, i in zip(rows, items, strict=True) if i["group"] == g)
                  for g in _groups(items)]
        lines.append(f"| {path} | {3600 / statistics.mean(seconds):.0f} | {median:.1f} | "
                     f"{statistics.mean(tenth) / median:.2f} | " + " | ".join(f"{g:.1f}" for g in groups) + " |")
    lines += ["", "| candidate | group | " + " | ".join(f"{p}: s, score, batching" for p in results) + " |",
              "|---|---|" + "---|" * len(results)]
    for k, item in enumerate(items):
        cells = []
        for rows in results.values():
            r = rows[k]
            score = f"{r['score']:.3f}" if r["score"] is not None else r["status"]
            cells.append(f"{r['seconds']:.1f}, {score}, {r['batching']}")
        lines.append(f"| {item['label']} | {item['group']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _groups(items: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(i["group"] for i in items))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", nargs="+", default=["new", "old"], choices=[*CAPS, "old"])
    parser.add_argument("--old-rev", default=DEFAULT_OLD_REV)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N candidates of the mix")
    parser.add_argument("--json", type=pathlib.Path, help="also write the raw results here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cap", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=pathlib.Path, help=argparse.SUPPRESS)
    parser.add_argument("--executor", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.cap, args.cache, args.workers, args.executor)
        return
    items = mix()[: args.limit]
    with contextlib.ExitStack() as stack:
        tmp = pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="optforge-throughput-")))
        evaluators = []
        for name in args.paths:
            farm = stack.enter_context(old_checkout(args.old_rev)) if name == "old" else None
            evaluator = Evaluator(name, tmp / name, args.workers, farm)
            stack.callback(evaluator.close)
            print(f"{name}: warm, references cached in {evaluator.ready:.0f} s", flush=True)
            evaluators.append(evaluator)
        results: dict[str, list[dict[str, Any]]] = {e.name: [] for e in evaluators}
        started = time.time()
        for k, item in enumerate(items, 1):
            for evaluator in evaluators:
                result = evaluator.evaluate(item["source"])
                results[evaluator.name].append(result)
                print(f"[{k}/{len(items)}] {evaluator.name:4} {item['label']}: {result['seconds']:.1f} s, "
                      f"{result['status']}, {result['batching']}", flush=True)
    print(f"\nmeasured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
          f"{args.workers} workers, bubblewrap\n")
    print(summarize(results, items))
    if args.json:
        args.json.write_text(json.dumps({"items": [{k: i[k] for k in ("label", "group")} for i in items],
                                         "results": results}, indent=1))


if __name__ == "__main__":
    main()
