"""Evaluate a scaling rule on the scaling task: ask the rule (in the sandbox) for its hyperparameters
at the tier's widths, train the ResMLP at each (width, seed) with them (in the sandbox, trusted code
only), measure each returned model's held-out loss on the trusted side, and score the gaps to each
width's tuned optimum (tasks/scaling/task.py).

Two kinds of job: one "scale" job runs the candidate's code and returns numbers, which the host
checks against AdamW's guards; the "scale_train" jobs run no candidate code at all, so nothing a
rule does can reach the training loop.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, replace

import numpy as np

from optforge.agent.config import EvaluationConfig
from optforge.agent.evaluation.limits import JobTimeouts
from optforge.archive import EvaluationRecord, TaskResult
from optforge.sandbox import Job, Limits, Runner, RunResult
from optforge.tasks.adapters import SCALING_GROUPS
from optforge.tasks.jobs import InvalidResult, checked_scale_result, checked_scale_train_result
from optforge.tasks.scaling import evaluation, reference
from optforge.tasks.scaling.task import GAP_CAP, ScalingTask, scaling_task
from optforge.tasks.scaling.train import Hyperparameters
from optforge.tasks.scoring import t_interval

ENTRY = "optforge.tasks.jobs:run_job"
METRIC = "heldout_loss"


@dataclass(frozen=True)
class RuleFailure:
    """Why the rule gave no hyperparameters: its job's status and first error line."""

    status: str
    error: str


@dataclass(frozen=True)
class WidthRun:
    """One (width, seed) run: its held-out loss (inf: diverged), or the status of its failure."""

    status: str
    loss: float | None = None
    error: str | None = None
    diverged_at: int | None = None
    seconds: float = 0.0


def evaluate_scaling(
    source: str, kind: str, tier: int, screened: EvaluationRecord, runner: Runner,
    config: EvaluationConfig, task: ScalingTask | None = None, ref: reference.Reference | None = None,
) -> EvaluationRecord:
    """The scaling task of `tier` (or `task`, against `ref`: tests use a tiny one) for a candidate
    whose tier 0 (`screened`) passed."""
    started = time.perf_counter()
    task = task or scaling_task(tier)
    ref = ref or reference.load()
    base = replace(screened, tier=tier, seeds=len(task.seeds),
                   task_versions={task.width_task(w): task.full_version(ref) for w in task.widths})
    table = rule_hyperparameters(source, kind, task, ref, runner, config)
    if isinstance(table, RuleFailure):
        return replace(base, status=table.status, error=table.error, seconds=time.perf_counter() - started)
    runs = train_widths(task, table, ref, runner, config)
    results = [width_result(task, w, table[w], runs, ref) for w in task.widths]
    record = replace(base, tasks=tuple(results), seconds=time.perf_counter() - started)
    failed = [r for r in results if r.status != "ok"]
    if failed:
        return replace(record, status=failed[0].status, error=f"{failed[0].name}: {failed[0].error}")
    score, ci = aggregate(task, runs, ref)
    return replace(record, score=score, score_ci=ci)


def rule_hyperparameters(
    source: str, kind: str, task: ScalingTask, ref: reference.Reference, runner: Runner, config: EvaluationConfig
) -> dict[int, Hyperparameters] | RuleFailure:
    """The rule's (lr, weight decay) per group at each of the task's widths, from one sandboxed
    "scale" job, or why there are none."""
    payload = {"action": "scale", "kind": kind, "source": source, "widths": list(task.widths),
               "base_width": task.base_width, "base": ref.base()}
    result = runner.run(Job(ENTRY, payload, JobTimeouts(config.sandbox, {}).tier0()))
    if result.status != "ok":
        return RuleFailure(result.status, result.error or result.status)
    try:
        return checked_scale_result(list(task.widths), result.meta)
    except InvalidResult as exc:
        return RuleFailure("error", f"invalid result: {exc}")


def job_limit(width: int, ref: reference.Reference, config: EvaluationConfig) -> Limits:
    """A multiple of what one run at `width` cost the reference sweep, as a proxy task's jobs get of
    AdamW's (every rule's run costs the same: the hyperparameters do not change the work)."""
    sandbox = config.sandbox
    if sandbox.job_timeout_s is not None:
        seconds = sandbox.job_timeout_s
    else:
        seconds = max(sandbox.min_job_timeout_s, sandbox.timeout_multiple * ref.at(width).seconds_per_run)
    return Limits(wall_seconds=seconds, memory_mb=sandbox.memory_mb)


def train_widths(
    task: ScalingTask, table: dict[int, Hyperparameters], ref: reference.Reference, runner: Runner,
    config: EvaluationConfig,
) -> dict[tuple[int, int], WidthRun]:
    """Every (width, seed) run, widest first (the longest jobs start first on the workers)."""
    cells = sorted(((w, s) for w in task.widths for s in task.seeds), key=lambda c: -c[0])
    recipe = dataclasses.asdict(task.recipe)
    jobs = [Job(ENTRY, {"action": "scale_train", "width": w, "seed": s, "recipe": recipe,
                        "hyperparameters": {g: list(v) for g, v in table[w].items()}}, job_limit(w, ref, config))
            for w, s in cells]
    results = runner.run_many(jobs)
    return {cell: _width_run(cell[0], result, task) for cell, result in zip(cells, results, strict=True)}


def _width_run(width: int, result: RunResult, task: ScalingTask) -> WidthRun:
    if result.status != "ok":
        return WidthRun(result.status, error=result.error, seconds=result.wall_seconds)
    try:
        weights, diverged = checked_scale_train_result(width, result.tensors, result.meta, task.recipe.steps)
        loss = math.inf if diverged is not None else evaluation.weights_loss(width, weights)
    except (InvalidResult, ValueError) as exc:
        return WidthRun("error", error=f"invalid result: {exc}", seconds=result.wall_seconds)
    return WidthRun("ok", loss, diverged_at=diverged, seconds=result.wall_seconds)


def capped_gap(run: WidthRun, optimum: float) -> float:
    """loss - L*, capped at GAP_CAP; a run that diverged (or whose loss is not finite) is the cap."""
    assert run.loss is not None
    return min(run.loss - optimum, GAP_CAP) if math.isfinite(run.loss) else GAP_CAP


def width_result(
    task: ScalingTask, width: int, hyperparameters: Hyperparameters, runs: dict[tuple[int, int], WidthRun],
    ref: reference.Reference,
) -> TaskResult:
    name, seconds = task.width_task(width), sum(runs[width, s].seconds for s in task.seeds)
    mine = [runs[width, s] for s in task.seeds]
    hp = tuple((g, *hyperparameters[g]) for g in SCALING_GROUPS)
    failed = next((r for r in mine if r.status != "ok"), None)
    if failed:
        return TaskResult(name, failed.status, METRIC, error=failed.error, seconds=seconds, hyperparameters=hp)
    optimum = ref.at(width)
    gaps = np.array([capped_gap(r, optimum.losses[s]) for r, s in zip(mine, task.seeds, strict=True)])
    losses = np.array([optimum.losses[s] for s in task.seeds]) + gaps  # a diverged run counts at the cap
    gap_ci = t_interval(gaps)
    diverged = [f"seed {s} diverged at step {r.diverged_at}" for r, s in zip(mine, task.seeds, strict=True)
                if r.diverged_at is not None or not math.isfinite(r.loss or 0.0)]
    return TaskResult(
        name, "ok", METRIC, score=math.exp(-gaps.mean()),
        score_ci=None if gap_ci is None else (math.exp(-gap_ci[1]), math.exp(-gap_ci[0])),
        final=float(losses.mean()), final_ci=t_interval(losses), reference_final=float(np.mean(list(
            optimum.losses[s] for s in task.seeds))),
        paired_diff_ci=gap_ci, lr=hyperparameters["hidden"][0], reference_lr=optimum.lr, seconds=seconds,
        seed_finals=tuple(float(v) for v in losses), hyperparameters=hp,
        error="; ".join(diverged) + f" (counted as the {GAP_CAP}-nat cap)" if diverged else None,
    )


def aggregate(task: ScalingTask, runs: dict[tuple[int, int], WidthRun], ref: reference.Reference) -> tuple[float, tuple[float, float] | None]:
    """exp(-mean capped gap) over widths and seeds, and its 95% t-interval over seeds (paired: each
    seed's mean gap over the widths) when there are several."""
    per_seed = np.array([np.mean([capped_gap(runs[w, s], ref.at(w).losses[s]) for w in task.widths])
                         for s in task.seeds])
    ci = t_interval(per_seed)
    return math.exp(-per_seed.mean()), None if ci is None else (math.exp(-ci[1]), math.exp(-ci[0]))

