"""Cost of one member (a seed at a learning rate) in each batching mode, per tier-1 task, in process.

The job time limits (agent/evaluation/limits.py, MODE_COST) scale the reference's cost per member by how much
costlier a member is in a less batched mode; this measures that ratio with tuned AdamW's sweep
shape (7 learning rates x 8 seeds in "vmap_lr", 2 rates x 8 seeds in "vmap", 2 seeds in "loop"):

    .venv/bin/python benchmarks/batching_modes.py [--tier 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from optforge.agent.config import SweepConfig
from optforge.tasks.baselines import load_baseline
from optforge.tasks.data import DATASETS
from optforge.tasks.proxy import tasks_for
from optforge.tasks.training import TrainSpec, train

# (mode, learning rates, seeds) of each measurement: enough members that per-job costs amortize.
SHAPES = (("vmap_lr", 7, 8), ("vmap", 2, 8), ("loop", 1, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a sandbox worker
    adamw = load_baseline("optimizer", "adamw")
    grid = tuple(SweepConfig().learning_rates(adamw.hparams["lr"]))
    print("| task | " + " | ".join(f"{m}: ms per member" for m, _, _ in SHAPES) + " | vmap / vmap_lr | loop / vmap_lr |")
    print("|---" * (3 + len(SHAPES)) + "|")
    for task in tasks_for(args.tier, "optimizer"):
        split = DATASETS[task.dataset]().train
        train(task, split, TrainSpec(adamw, grid[:2]), [0], "vmap_lr")  # lazy first-call set-up
        per_member = []
        for mode, n_lrs, n_seeds in SHAPES:
            start = time.perf_counter()
            train(task, split, TrainSpec(adamw, grid[:n_lrs]), list(range(n_seeds)), mode)
            per_member.append((time.perf_counter() - start) / (n_lrs * n_seeds))
        cells = " | ".join(f"{1000 * s:.1f}" for s in per_member)
        print(f"| {task.name} | {cells} | {per_member[1] / per_member[0]:.1f} | {per_member[2] / per_member[0]:.1f} |")


if __name__ == "__main__":
    main()
