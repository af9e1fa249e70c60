"""Tier-1 (or tier-2) scores of every bundled optimizer baseline, plus two broken candidates, against
tuned AdamW, through the real sandbox with the default configuration. The table in
benchmarks/README.md comes from this script.

    .venv/bin/python benchmarks/baseline_scores.py [--tier 1] [--seeds 8]
"""

from __future__ import annotations

import argparse
import time

import torch

from optforge.agent.config import EvaluationConfig, SandboxConfig, cache_dir
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.evaluation.evaluate import evaluate
from optforge.agent.evaluation.runtime import open_runner
from optforge.tasks.baselines import baseline_names, baseline_source

BROKEN = {
    "zero-update": 'import torch\nHPARAMS = {"lr": 1e-3}\ndef init(p):\n    return {}\n'
    "def update(g, p, s, step, hp):\n    return torch.zeros_like(p), s\n",
    "nan-after-10": 'import torch\nHPARAMS = {"lr": 1e-3}\ndef init(p):\n    return {}\n'
    "def update(g, p, s, step, hp):\n    if step > 10:\n        return g * float('nan'), s\n"
    "    return -hp['lr'] * torch.sign(g), s\n",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", type=int, default=1, choices=(1, 2))
    parser.add_argument("--seeds", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = {args.tier: args.seeds} if args.seeds else EvaluationConfig().seeds
    config = EvaluationConfig(seeds=seeds, sandbox=SandboxConfig())
    sources = {name: baseline_source("optimizer", name) for name in baseline_names("optimizer")} | BROKEN
    print("| candidate | status | score [95% CI] | " + " | ".join(_task_names(args.tier)) + " | seconds |")
    print("|---|---|---|" + "---|" * len(_task_names(args.tier)) + "---|")
    with open_runner(config.sandbox, cache_dir()) as runner:
        cache = BaselineCache(cache_dir())
        for name, source in sources.items():
            start = time.perf_counter()
            ev = evaluate(source, "optimizer", args.tier, runner, config, cache)
            score = f"{ev.score:.3f} [{ev.score_ci[0]:.3f}, {ev.score_ci[1]:.3f}]" if ev.score is not None and ev.score_ci else "-"
            tasks = " | ".join(f"{t.score:.3f}" if t.score is not None else t.status for t in ev.tasks) or " | ".join(
                "-" for _ in _task_names(args.tier))
            print(f"| {name} | {ev.status} | {score} | {tasks} | {time.perf_counter() - start:.1f} |", flush=True)


def _task_names(tier: int) -> list[str]:
    from optforge.tasks.proxy import tasks_for

    return [t.name for t in tasks_for(tier, "optimizer")]


if __name__ == "__main__":
    main()
