"""Learning-rate sweeps: train one (candidate, task) at several learning rates in the sandbox, score
each run's held-out curve on the trusted side, and extend the grid while the best rate sits on its
edge. Every candidate and the AdamW reference go through this same procedure (equal tuning)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from optforge.sandbox import Job, Limits, Runner, RunResult
from optforge.tasks.data import DATASETS
from optforge.tasks.jobs import InvalidResult, checked_train_result
from optforge.tasks.proxy import ProxyTask
from optforge.tasks.scoring import heldout_curves, heldout_metric_name

from .config import SweepConfig

ENTRY = "optforge.tasks.jobs:run_job"


@dataclass(frozen=True)
class SweepOutcome:
    lrs: list[float]  # ascending
    curves: dict[int, np.ndarray]  # lr index -> [seeds, checkpoints] held-out metric (ok runs only)
    statuses: list[tuple[str, str | None]]  # per lr: (status, first error line)
    metric: str
    seconds: float = 0.0  # sandbox wall time of all its runs

    def best(self) -> int | None:
        """Index of the learning rate with the lowest mean final held-out metric (None: all failed)."""
        if not self.curves:
            return None
        return min(self.curves, key=lambda i: (float(self.curves[i][:, -1].mean()), i))

    def to_json(self) -> dict[str, Any]:
        curves = {str(i): c.tolist() for i, c in self.curves.items()}
        return {"lrs": self.lrs, "curves": curves, "statuses": self.statuses, "metric": self.metric,
                "seconds": self.seconds}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepOutcome:
        curves = {int(i): np.asarray(c, dtype=float) for i, c in data["curves"].items()}
        statuses = [(s, e) for s, e in data["statuses"]]
        return cls(list(data["lrs"]), curves, statuses, data["metric"], float(data.get("seconds", 0.0)))


@dataclass(frozen=True)
class SweepSpec:
    """One sweep to run: `source` (a `kind` candidate) on `task`, centred on `center` lr."""

    task: ProxyTask
    kind: str  # the candidate's kind: decides which held-out metric judges it
    source: str
    source_kind: str  # the kind the job loads `source` as (the AdamW reference is an optimizer)
    center: float
    seeds: list[int]
    batched: bool


def run_sweeps(specs: list[SweepSpec], sweep: SweepConfig, runner: Runner, limits: Limits) -> list[SweepOutcome]:
    """Run every sweep on the pool at once; then, round by round, add the next learning rate beyond
    any edge that holds the best result (up to `sweep.max_extensions` per side)."""
    runs: list[dict[float, tuple[str, str | None, np.ndarray | None]]] = [{} for _ in specs]
    seconds = [0.0 for _ in specs]
    pending = [(i, lr) for i, spec in enumerate(specs) for lr in sweep.learning_rates(spec.center)]
    while pending:
        results = runner.run_many([_job(specs[i], lr, limits) for i, lr in pending])
        for (i, lr), result in zip(pending, results, strict=True):
            runs[i][lr] = _score_run(specs[i], lr, result)
            seconds[i] += result.wall_seconds
        pending = [(i, lr) for i, spec in enumerate(specs) for lr in _extensions(spec, runs[i], sweep)]
    return [_outcome(spec, run, s) for spec, run, s in zip(specs, runs, seconds, strict=True)]


def _job(spec: SweepSpec, lr: float, limits: Limits) -> Job:
    payload = {"action": "train", "kind": spec.source_kind, "source": spec.source, "task": spec.task.name,
               "lr": lr, "seeds": spec.seeds, "batched": spec.batched}
    return Job(ENTRY, payload, limits)


def _score_run(spec: SweepSpec, lr: float, result: RunResult) -> tuple[str, str | None, np.ndarray | None]:
    """(status, error, held-out curve) of one run; divergence becomes a status, never a number."""
    if result.status != "ok":
        return result.status, result.error, None
    try:
        diverged_at, checkpoints = checked_train_result(spec.task.name, len(spec.seeds), result.tensors, result.meta)
    except InvalidResult as exc:
        return "error", f"invalid result: {exc}", None
    if diverged_at is not None:
        return "diverged", f"training loss became non-finite at step {diverged_at} (lr {lr:.3g})", None
    metric = heldout_metric_name(spec.task, spec.kind)
    curve = heldout_curves(spec.task, DATASETS[spec.task.dataset]().heldout, checkpoints, metric)
    if not np.isfinite(curve).all():
        return "diverged", f"held-out {metric} is not finite (lr {lr:.3g})", None
    return "ok", None, curve


def _extensions(spec: SweepSpec, run: dict, sweep: SweepConfig) -> list[float]:
    """The next learning rate beyond the grid's edge when the best run sits on that edge."""
    scored = {lr: r[2][:, -1].mean() for lr, r in run.items() if r[2] is not None}
    if not scored or sweep.max_extensions == 0:
        return []
    lrs = sorted(run)
    best = min(scored, key=lambda lr: (scored[lr], lr))
    grid = sweep.learning_rates(spec.center)
    if best == lrs[-1] and lrs[-1] < grid[-1] * sweep.factor ** (sweep.max_extensions - 0.5):
        return [lrs[-1] * sweep.factor]
    if best == lrs[0] and lrs[0] > grid[0] / sweep.factor ** (sweep.max_extensions - 0.5):
        return [lrs[0] / sweep.factor]
    return []


def _outcome(spec: SweepSpec, run: dict, seconds: float) -> SweepOutcome:
    lrs = sorted(run)
    curves = {i: run[lr][2] for i, lr in enumerate(lrs) if run[lr][2] is not None}
    statuses = [(run[lr][0], run[lr][1]) for lr in lrs]
    return SweepOutcome(lrs, curves, statuses, heldout_metric_name(spec.task, spec.kind), seconds)
