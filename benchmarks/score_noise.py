"""How noisy is the tier-1 aggregate? Tuned AdamW scored against tuned AdamW on independent seed sets.

Scores are paired by seed, so AdamW against itself on the same seeds is exactly 1.0 by construction.
Here the "candidate" is AdamW trained on seed set k (seeds 8k..8k+7) and the reference is AdamW on
seed set 0: the spread of those aggregates is the noise floor a real difference must clear.

    .venv/bin/python benchmarks/score_noise.py [--sets 5] [--seeds 8]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from optforge.agent.config import SandboxConfig, SweepConfig, cache_dir
from optforge.agent.evaluation.limits import JobTimeouts
from optforge.agent.evaluation.runtime import WARMUP, train_data_dir
from optforge.agent.evaluation.sweeps import SweepOutcome, SweepSpec, run_sweeps
from optforge.sandbox import ProcessRunner
from optforge.tasks.baselines import baseline_source
from optforge.tasks.contracts import declared_hparams
from optforge.tasks.data import heldout_source_paths
from optforge.tasks.proxy import tasks_for
from optforge.tasks.scoring import aggregate, score_task


def adamw_sweeps(runner: ProcessRunner, seeds: list[int]) -> dict[str, SweepOutcome]:
    source = baseline_source("optimizer", "adamw")
    center = declared_hparams(source)["lr"]
    tasks = tasks_for(1, "optimizer")
    specs = [SweepSpec(t, "optimizer", source, "optimizer", center, seeds, "vmap_lr") for t in tasks]
    outcomes = run_sweeps(specs, SweepConfig(), runner, JobTimeouts(SandboxConfig(), {}))
    return {t.name: o for t, o in zip(tasks, outcomes, strict=True)}


def best_curve(outcome: SweepOutcome) -> np.ndarray:
    best = outcome.best()
    assert best is not None, outcome.statuses
    return outcome.curves[best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = tasks_for(1, "optimizer")
    data = train_data_dir(cache_dir())
    with ProcessRunner(warmup=WARMUP, data_dir=data, hidden_paths=heldout_source_paths()) as runner:
        sets = [adamw_sweeps(runner, list(range(k * args.seeds, (k + 1) * args.seeds))) for k in range(args.sets)]
    aggregates = []
    for k in range(1, args.sets):
        scores = [score_task(best_curve(sets[k][t.name]), best_curve(sets[0][t.name])) for t in tasks]
        agg, ci = aggregate(scores)
        aggregates.append(agg)
        per_task = ", ".join(f"{t.name} {s.score:.3f}" for t, s in zip(tasks, scores, strict=True))
        print(f"seed set {k} vs set 0: aggregate {agg:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  ({per_task})")
    print(f"\nAdamW vs AdamW on independent seed sets of {args.seeds}: aggregate mean "
          f"{statistics.mean(aggregates):.3f}, std {statistics.stdev(aggregates):.3f}, "
          f"range [{min(aggregates):.3f}, {max(aggregates):.3f}] over {len(aggregates)} sets")


if __name__ == "__main__":
    main()
