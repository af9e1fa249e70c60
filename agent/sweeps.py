"""Learning-rate sweeps: the training jobs of one (candidate, task) over a list of learning rates, and
their held-out curves computed on the trusted side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from optforge.sandbox import Job, Limits, RunResult
from optforge.tasks.data import DATASETS
from optforge.tasks.jobs import unpack_checkpoints
from optforge.tasks.proxy import ProxyTask
from optforge.tasks.scoring import heldout_curves, heldout_metric_name

ENTRY = "optforge.tasks.jobs:run_job"


@dataclass(frozen=True)
class SweepOutcome:
    lrs: list[float]
    curves: dict[int, np.ndarray]  # lr index -> [seeds, checkpoints] held-out metric (ok runs only)
    statuses: list[tuple[str, str | None]]  # per lr: (status, first error line)
    metric: str

    def best(self) -> int | None:
        """Index of the learning rate with the lowest mean final held-out metric (None: all failed)."""
        if not self.curves:
            return None
        return min(self.curves, key=lambda i: (float(self.curves[i][:, -1].mean()), i))

    def to_json(self) -> dict[str, Any]:
        return {
            "lrs": self.lrs,
            "curves": {str(i): c.tolist() for i, c in self.curves.items()},
            "statuses": self.statuses,
            "metric": self.metric,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepOutcome:
        curves = {int(i): np.asarray(c, dtype=float) for i, c in data["curves"].items()}
        statuses = [(s, e) for s, e in data["statuses"]]
        return cls(list(data["lrs"]), curves, statuses, data["metric"])


def sweep_jobs(
    task: ProxyTask,
    kind: str,
    source: str,
    lrs: list[float],
    seeds: list[int],
    batched: bool,
    limits: Limits,
) -> list[Job]:
    return [
        Job(
            ENTRY,
            {
                "action": "train",
                "kind": kind,
                "source": source,
                "task": task.name,
                "lr": lr,
                "seeds": seeds,
                "batched": batched,
            },
            limits,
        )
        for lr in lrs
    ]


def sweep_outcome(
    task: ProxyTask, kind: str, lrs: list[float], results: list[RunResult]
) -> SweepOutcome:
    """Held-out curves for each learning rate of a sweep; divergence becomes a status."""
    metric = heldout_metric_name(task, kind)
    heldout = DATASETS[task.dataset]().heldout
    curves: dict[int, np.ndarray] = {}
    statuses: list[tuple[str, str | None]] = []
    for i, (lr, result) in enumerate(zip(lrs, results, strict=True)):
        status, error = result.status, result.error
        if status == "ok" and result.meta.get("diverged_at") is not None:
            status, error = (
                "diverged",
                f"training loss became non-finite at step {result.meta['diverged_at']} (lr {lr:.3g})",
            )
        if status == "ok":
            checkpoints = unpack_checkpoints(result.tensors, result.meta["checkpoints"])
            curve = heldout_curves(task, heldout, checkpoints, metric)
            if np.isfinite(curve).all():
                curves[i] = curve
            else:
                status, error = "diverged", f"held-out {metric} is not finite (lr {lr:.3g})"
        statuses.append((status, error))
    return SweepOutcome(lrs=lrs, curves=curves, statuses=statuses, metric=metric)
