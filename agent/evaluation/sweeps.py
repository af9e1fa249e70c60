"""Learning-rate sweeps: train one (candidate, task) at several learning rates in the sandbox, score
each run's held-out curve on the trusted side, and extend the grid while the best rate sits on its
edge. Every candidate and the AdamW reference go through this same procedure (equal tuning); how
the runs are batched into jobs changes their cost, never their result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from optforge.agent.config import SweepConfig
from optforge.sandbox import Job, Limits, Runner, RunResult
from optforge.tasks.data import DATASETS
from optforge.tasks.jobs import MAX_NOTE_CHARS, InvalidResult, checked_train_result
from optforge.tasks.proxy import ProxyTask
from optforge.tasks.scoring import heldout_curves, heldout_metric_name
from optforge.tasks.vectorized import BATCHINGS, less_batched

ENTRY = "optforge.tasks.jobs:run_job"


@dataclass(frozen=True)
class SweepOutcome:
    lrs: list[float]  # ascending
    curves: dict[int, np.ndarray]  # lr index -> [seeds, checkpoints] held-out metric (ok runs only)
    statuses: list[tuple[str, str | None]]  # per lr: (status, first error line)
    metric: str
    seconds: float = 0.0  # sandbox wall time of all its runs
    members: int = 0  # seeds x learning rates trained by those runs: what `seconds` paid for
    batching: str = "vmap_lr"  # the least batched mode its jobs ran in
    batching_note: str | None = None  # why a more batched mode was given up, when one was

    def best(self) -> int | None:
        """Index of the learning rate with the lowest mean final held-out metric (None: all failed)."""
        if not self.curves:
            return None
        return min(self.curves, key=lambda i: (float(self.curves[i][:, -1].mean()), i))

    def to_json(self) -> dict[str, Any]:
        curves = {str(i): c.tolist() for i, c in self.curves.items()}
        return {"lrs": self.lrs, "curves": curves, "statuses": self.statuses, "metric": self.metric,
                "seconds": self.seconds, "members": self.members, "batching": self.batching,
                "batching_note": self.batching_note}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepOutcome:
        curves = {int(i): np.asarray(c, dtype=float) for i, c in data["curves"].items()}
        statuses = [(s, e) for s, e in data["statuses"]]
        return cls(list(data["lrs"]), curves, statuses, data["metric"], float(data["seconds"]),
                   int(data["members"]), str(data["batching"]), data["batching_note"])


@dataclass(frozen=True)
class SweepSpec:
    """One sweep to run: `source` (a `kind` candidate) on `task`, centred on `center` lr."""

    task: ProxyTask
    kind: str  # the candidate's kind: decides which held-out metric judges it
    source: str
    source_kind: str  # the kind the job loads `source` as (the AdamW reference is an optimizer)
    center: float
    seeds: list[int]
    batching: str  # the mode tier 0 chose (vectorized.py); a job that fails in it is retried less batched
    device: str = "cpu"  # where the jobs train: "cpu" or "cuda" (runner_device)


class JobLimits(Protocol):
    def train(self, task: ProxyTask, members: int, batching: str) -> Limits: ...


Run = tuple[str, str | None, np.ndarray | None]  # (status, first error line, held-out curve)


@dataclass
class _Progress:
    """What one sweep has so far: the runs the procedure has taken (by learning rate), runs computed
    ahead of the rule that may ask for them, cost, and its (possibly fallen-back) batching mode."""

    batching: str
    runs: dict[float, Run] = field(default_factory=dict)
    ahead: dict[float, Run] = field(default_factory=dict)
    seconds: float = 0.0
    members: int = 0
    note: str | None = None
    refined: int = 0  # refinement rounds asked for so far
    asked: set[float] = field(default_factory=set)  # refinement rates asked for


def run_sweeps(specs: list[SweepSpec], sweep: SweepConfig, runner: Runner, limits: JobLimits) -> list[SweepOutcome]:
    """Run every sweep on the pool at once: the whole grid as one job where the candidate batches
    learning rates ("vmap_lr"), else a job per rate. A job that fails in a vmap mode is rerun in the
    next, less batched one (sticky for that sweep). Then, round by round, add the next learning rate
    beyond any edge that holds the best result (up to `sweep.max_extensions` per side).

    Where rates batch, an extension job trains every remaining point on that side at once and the
    rule then takes them one at a time as it asks for them: the outcome is exactly the sequential
    procedure's (a member's result does not depend on what is batched beside it), in fewer rounds.
    Last, `sweep.refine` rounds each try the best rate times and over a halved (log) step."""
    progress = [_Progress(spec.batching) for spec in specs]
    pending = [(i, lrs) for i, spec in enumerate(specs)
               for lrs in _job_rates(sweep.learning_rates(spec.center), spec.batching)]
    while pending:
        jobs = [_job(specs[i], lrs, progress[i].batching, limits) for i, lrs in pending]
        retry = []
        for (i, lrs), job, result in zip(pending, jobs, runner.run_many(jobs), strict=True):
            state, batching = progress[i], job.payload["batching"]
            state.seconds += result.wall_seconds
            if result.status == "error" and batching != "loop":
                # vmap could not run the candidate's code here: fall back, keep the first reason.
                state.batching = less_batched(state.batching, BATCHINGS[BATCHINGS.index(batching) + 1])
                state.note = state.note or f"{batching}: {result.error}"[:MAX_NOTE_CHARS]
                retry += [(i, part) for part in _job_rates(list(lrs), state.batching)]
                continue
            state.members += len(lrs) * len(specs[i].seeds)
            state.ahead.update(_score_job(specs[i], lrs, result))
        if retry:
            pending = retry
            continue
        pending = [(i, part) for i, spec in enumerate(specs) if (lrs := _next_rates(spec, progress[i], sweep))
                   for part in _job_rates(list(lrs), progress[i].batching)]
    return [_outcome(spec, state) for spec, state in zip(specs, progress, strict=True)]


def _next_rates(spec: SweepSpec, state: _Progress, sweep: SweepConfig) -> tuple[float, ...]:
    """Take the grid's runs, then extensions already computed as the rule asks for them, then the
    refinement rounds; return the learning rates of the next job (empty when the sweep is done)."""
    for lr in [*sweep.learning_rates(spec.center), *state.asked]:
        if lr in state.ahead:
            state.runs[lr] = state.ahead.pop(lr)
    while (wanted := _extensions(spec, state.runs, sweep)) and wanted[0] in state.ahead:
        state.runs[wanted[0]] = state.ahead.pop(wanted[0])
    if wanted:
        return tuple(_side_chain(spec, state.runs, sweep, wanted[0])) if state.batching == "vmap_lr" else tuple(wanted)
    while state.refined < sweep.refine:
        state.refined += 1
        rates = _refinement(state.runs, sweep.refinement_step(state.refined))
        if rates:
            state.asked.update(rates)
            return rates
    return ()


def _refinement(run: dict[float, Run], step: float) -> tuple[float, ...]:
    """The untried rates one `step` either side of the best run (none when every run failed)."""
    best = _best_rate(run)
    if best is None:
        return ()
    return tuple(lr for lr in (best / step, best * step) if lr not in run)


def _best_rate(run: dict[float, Run]) -> float | None:
    """The rate with the lowest mean final held-out metric (ties: the lower rate); None if all failed."""
    scored = {lr: r[2][:, -1].mean() for lr, r in run.items() if r[2] is not None}
    return min(scored, key=lambda lr: (scored[lr], lr)) if scored else None


def _side_chain(spec: SweepSpec, run: dict[float, Run], sweep: SweepConfig, first: float) -> list[float]:
    """`first` and every further point beyond the same edge that the extension rule could still ask
    for, computed exactly as it would (each the last times or over the factor)."""
    grid = sweep.learning_rates(spec.center)
    chain = [first]
    if first > max(run):
        while chain[-1] < grid[-1] * sweep.factor ** (sweep.max_extensions - 0.5):
            chain.append(chain[-1] * sweep.factor)
    else:
        while chain[-1] > grid[0] / sweep.factor ** (sweep.max_extensions - 0.5):
            chain.append(chain[-1] / sweep.factor)
    return chain


def runner_device(runner: Runner) -> str:
    """Where a runner's workers train: "cuda" when it gave them GPUs (agent/evaluation/runtime.py
    records it), else "cpu"."""
    return runner.environment.get("device", "cpu")


def _job_rates(lrs: list[float], batching: str) -> list[tuple[float, ...]]:
    """The learning rates of each job: all in one when they batch, else one per job."""
    return [tuple(lrs)] if batching == "vmap_lr" else [(lr,) for lr in lrs]


def _job(spec: SweepSpec, lrs: tuple[float, ...], batching: str, limits: JobLimits) -> Job:
    payload = {"action": "train", "kind": spec.source_kind, "source": spec.source, "task": spec.task.name,
               "lrs": list(lrs), "seeds": spec.seeds, "batching": batching}
    if spec.device != "cpu":  # CPU payloads stay exactly as they were before devices existed
        payload["device"] = spec.device
    return Job(ENTRY, payload, limits.train(spec.task, len(lrs) * len(spec.seeds), batching))


def _score_job(spec: SweepSpec, lrs: tuple[float, ...], result: RunResult) -> dict[float, Run]:
    """Each learning rate's run from one job; divergence becomes a status, never a number."""
    if result.status != "ok":
        return {lr: (result.status, result.error, None) for lr in lrs}
    try:
        checked = checked_train_result(spec.task.name, len(lrs), len(spec.seeds), result.tensors, result.meta)
    except InvalidResult as exc:
        return {lr: ("error", f"invalid result: {exc}", None) for lr in lrs}
    return {
        lr: _score_run(spec, lr, diverged_at, checkpoints)
        for lr, diverged_at, checkpoints in zip(lrs, checked.diverged_at, checked.checkpoints, strict=True)
    }


def _score_run(spec: SweepSpec, lr: float, diverged_at: int | None, checkpoints: list) -> Run:
    if diverged_at is not None:
        return "diverged", f"training loss became non-finite at step {diverged_at} (lr {lr:.3g})", None
    metric = heldout_metric_name(spec.task, spec.kind)
    curve = heldout_curves(spec.task, DATASETS[spec.task.dataset]().heldout, checkpoints, metric)
    if not np.isfinite(curve).all():
        return "diverged", f"held-out {metric} is not finite (lr {lr:.3g})", None
    return "ok", None, curve


def _extensions(spec: SweepSpec, run: dict[float, Run], sweep: SweepConfig) -> list[float]:
    """The next learning rate beyond the grid's edge when the best run sits on that edge."""
    best = _best_rate(run)
    if best is None or sweep.max_extensions == 0:
        return []
    lrs = sorted(run)
    grid = sweep.learning_rates(spec.center)
    if best == lrs[-1] and lrs[-1] < grid[-1] * sweep.factor ** (sweep.max_extensions - 0.5):
        return [lrs[-1] * sweep.factor]
    if best == lrs[0] and lrs[0] > grid[0] / sweep.factor ** (sweep.max_extensions - 0.5):
        return [lrs[0] / sweep.factor]
    return []


def _outcome(spec: SweepSpec, state: _Progress) -> SweepOutcome:
    lrs = sorted(state.runs)
    run = state.runs
    curves = {i: c for i, lr in enumerate(lrs) if (c := run[lr][2]) is not None}
    statuses = [(run[lr][0], run[lr][1]) for lr in lrs]
    return SweepOutcome(lrs, curves, statuses, heldout_metric_name(spec.task, spec.kind), state.seconds,
                        state.members, state.batching, state.note)
