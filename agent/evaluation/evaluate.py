"""Evaluate one candidate: static contract check, tier 0 in the sandbox, then the proxy tasks of a tier
with an equal learning-rate sweep for the candidate and for AdamW, scored by trusted code.

An evaluation is the archive's own record (`EvaluationRecord`, keyed by the candidate's id): a
campaign adds where and with what code it ran when it stores one, so there is one record type.

Failures are statuses with the first error line kept, never numbers: a task whose every learning
rate failed takes the status of the run at the candidate's own default learning rate.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from optforge.agent.config import EvaluationConfig
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.evaluation.limits import JobTimeouts
from optforge.agent.evaluation.preference import evaluate_preference
from optforge.agent.evaluation.scaling import evaluate_scaling
from optforge.agent.evaluation.sweeps import (
    ENTRY,
    SweepOutcome,
    SweepSpec,
    run_sweeps,
    runner_device,
)
from optforge.archive import STATE_TENSORS, EvaluationRecord, TaskResult, candidate_id
from optforge.sandbox import Job, Runner
from optforge.tasks.baselines import baseline_source
from optforge.tasks.contracts import check_source, declared_hparams
from optforge.tasks.jobs import InvalidResult, checked_tier0_report
from optforge.tasks.kinds import kind_spec
from optforge.tasks.proxy import ProxyTask, tasks_for
from optforge.tasks.scoring import TaskScore, aggregate, score_task
from optforge.tasks.vectorized import less_batched


def evaluation_json(evaluation: EvaluationRecord, kind: str) -> dict[str, Any]:
    """`optforge evaluate --json`: the evaluation of a file, not yet a campaign's record, so
    without the record's provenance fields; the kind, and the state size tier 0 measured."""
    data = asdict(evaluation)
    for name in ("candidate_id", "batch_safe", "descriptors", "code_commit", "config_hash",
                 "environment", "reused_from", "created_at"):
        data.pop(name)
    state = evaluation.descriptors.get(STATE_TENSORS)
    data.update(kind=kind, state_tensors=int(state) if state is not None else None)
    data["tasks"], data["learning_rates"] = list(data["tasks"]), list(data["learning_rates"])
    return data


def evaluate(
    source: str, kind: str, tier: int, runner: Runner, config: EvaluationConfig, cache: BaselineCache
) -> EvaluationRecord:
    """Evaluate `source` as a `kind` candidate up to `tier` (0, 1 or 2)."""
    started = time.perf_counter()
    rejected = contract_rejection(source, kind, tier)
    if rejected:
        return rejected
    screened = run_tier0(source, kind, runner, config)
    if screened.status != "ok" or tier == 0:
        return replace(screened, tier=tier, seconds=time.perf_counter() - started)
    result = evaluate_tasks(source, kind, tier, screened, runner, config, cache)
    return replace(result, seconds=time.perf_counter() - started)


def run_tier0(source: str, kind: str, runner: Runner, config: EvaluationConfig) -> EvaluationRecord:
    """Tier 0 in the sandbox: conformance checks and the behaviour fingerprint (no proxy tasks).

    The source must already have passed `contract_rejection`."""
    started = time.perf_counter()
    limits = JobTimeouts(config.sandbox, {}).tier0()
    result = runner.run(Job(ENTRY, {"action": "tier0", "kind": kind, "source": source}, limits))
    if result.status != "ok":
        return EvaluationRecord(candidate_id(source), 0, result.status, error=result.error)
    try:
        report = checked_tier0_report(result.meta)
    except InvalidResult as exc:
        return EvaluationRecord(candidate_id(source), 0, "error", error=f"invalid result: {exc}")
    screened = EvaluationRecord(
        candidate_id(source), 0, "ok", fingerprint=report.fingerprint, batching=report.batching,
        batching_note=report.batching_note, descriptors={STATE_TENSORS: float(report.state_tensors)},
        seconds=time.perf_counter() - started,
    )
    if not report.passed:  # a batching mode means nothing for a candidate that goes no further
        return replace(screened, status="failed_tier0", error=report.error, batching=None, batching_note=None)
    return screened


def evaluate_tasks(
    source: str, kind: str, tier: int, screened: EvaluationRecord, runner: Runner,
    config: EvaluationConfig, cache: BaselineCache, tasks: list[ProxyTask] | None = None,
) -> EvaluationRecord:
    """The proxy tasks of `tier` (1 or 2; default: its suite, or `tasks`) for a candidate whose
    tier 0 (`screened`) passed."""
    if kind_spec(kind).evaluation == "preference":
        return evaluate_preference(source, kind, tier, screened, runner, config, cache)
    if kind_spec(kind).evaluation == "scaling":
        return evaluate_scaling(source, kind, tier, screened, runner, config)
    started = time.perf_counter()
    tasks = tasks_for(tier, kind) if tasks is None else tasks
    seeds = list(range(config.seeds_for(tier)))
    plan = kind_spec(kind).sweep  # whose default places the window: the candidate's or the reference's
    assert plan is not None, "every kind scored on the proxy tasks sweeps a hyperparameter"
    own = source if plan.centre == "candidate" else baseline_source(*kind_spec(kind).reference)
    center = declared_hparams(own)[plan.hyperparameter]
    reference = cache.sweeps(tasks, kind, seeds, config.sweep, runner, JobTimeouts(config.sandbox, {}))
    # A tier-0 record written before batching modes existed has none: seeds under vmap is safe by
    # construction; batched learning rates need tier 0's equivalence check.
    planned = less_batched(screened.batching or "vmap", config.max_batching)
    device = runner_device(runner)
    specs = [SweepSpec(t, kind, source, kind, center, seeds, planned, device) for t in tasks]
    outcomes = run_sweeps(specs, config.sweep, runner, JobTimeouts(config.sandbox, reference))
    default = config.sweep.snap(center)
    scored = [_score(t, o, reference[t.name], default) for t, o in zip(tasks, outcomes, strict=True)]
    base = replace(
        screened, tier=tier, learning_rates=tuple(config.sweep.learning_rates(center)), seeds=len(seeds),
        seconds=time.perf_counter() - started,
        task_versions={t.name: t.full_version() for t in tasks},
        batching=functools.reduce(less_batched, (o.batching for o in outcomes), planned),
        batching_note=next((o.batching_note for o in outcomes if o.batching_note), screened.batching_note),
    )
    return _finish(base, scored)


def contract_rejection(source: str, kind: str, tier: int) -> EvaluationRecord | None:
    """The "invalid" evaluation of a source that fails the static contract check, else None.

    Cheap and runs no candidate code: callers use it before starting any sandbox worker."""
    errors = check_source(source, kind)
    return EvaluationRecord(candidate_id(source), tier, "invalid", error="; ".join(errors)) if errors else None


def _score(
    task: ProxyTask, outcome: SweepOutcome, ref: SweepOutcome, default: float
) -> tuple[TaskResult, TaskScore | None]:
    """`default`: the grid rate nearest the candidate's own; its run's status stands for a task
    whose every rate failed."""
    seconds = outcome.seconds
    best, ref_best = outcome.best(), ref.best()
    if best is None:
        status, error = outcome.statuses[outcome.lrs.index(default)]
        return TaskResult(task.name, status, outcome.metric, error=error, seconds=seconds), None
    if ref_best is None:
        error = "the AdamW reference failed at every learning rate: " + str(ref.statuses[0][1])
        return TaskResult(task.name, "sandbox_error", outcome.metric, error=error, seconds=seconds), None
    s = score_task(outcome.curves[best], ref.curves[ref_best])
    result = TaskResult(
        task.name, "ok", outcome.metric, score=s.score, score_ci=s.score_ci, final=s.final,
        final_ci=s.final_ci, reference_final=s.reference_final, paired_diff_ci=s.paired_diff_ci,
        lr=outcome.lrs[best], reference_lr=ref.lrs[ref_best], seconds=seconds,
        seed_finals=s.seed_finals, curve=_mean_curve(outcome.curves[best]),
        reference_curve=_mean_curve(ref.curves[ref_best]),
    )
    return result, s


def _mean_curve(curves: np.ndarray) -> tuple[float, ...]:
    """[seeds, checkpoints] -> the mean over seeds at each checkpoint."""
    return tuple(float(v) for v in curves.mean(axis=0))


def _finish(base: EvaluationRecord, scored: list[tuple[TaskResult, TaskScore | None]]) -> EvaluationRecord:
    results = [r for r, _ in scored]
    base = replace(base, tasks=tuple(results))
    failed = [r for r in results if r.status != "ok"]
    if failed:
        return replace(base, status=failed[0].status, error=f"{failed[0].name}: {failed[0].error}")
    score, ci = aggregate([s for _, s in scored if s is not None])
    return replace(base, score=score, score_ci=ci)
