"""Evaluate a preference loss on the preference task: align the char-GPT at every beta of the grid
in the sandbox, measure each returned policy's reward and KL on the trusted side, and score the area
under the reward-vs-KL hull against DPO's on the same grid, seeds and evaluation stream (paired).

One job per (seed, beta): the two workers run a candidate's four betas two at a time. DPO's runs are
cached like the proxy tasks' AdamW sweeps (by the task's full version and DPO's source).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from optforge.agent.config import EvaluationConfig
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.evaluation.limits import UNMEASURED_TIMEOUT_S
from optforge.archive import EvaluationRecord, TaskResult
from optforge.sandbox import Job, Limits, Runner, RunResult
from optforge.tasks.adapters import first_line
from optforge.tasks.baselines import baseline_source
from optforge.tasks.jobs import InvalidResult, checked_align_result
from optforge.tasks.kinds import kind_spec
from optforge.tasks.preference import frontier, prepare
from optforge.tasks.preference.gpt import CharGPT
from optforge.tasks.preference.task import PreferenceTask, preference_task
from optforge.tasks.scoring import HIGHER_IS_BETTER, SCORE_CAP, SCORE_FLOOR, t_interval

ENTRY = "optforge.tasks.jobs:run_job"
METRIC = "reward_kl_auc"
assert METRIC in HIGHER_IS_BETTER  # paired comparisons divide the other way round for it


@dataclass(frozen=True)
class BetaRun:
    """One (seed, beta) run: its (KL, reward) point, or the status of its failure."""

    status: str
    kl: float | None = None
    reward: float | None = None
    error: str | None = None
    stopped_at: int | None = None


@dataclass(frozen=True)
class Alignment:
    """A loss's runs on a task: runs[seed index][beta index], and the sandbox time they took."""

    betas: tuple[float, ...]
    seeds: tuple[int, ...]
    runs: tuple[tuple[BetaRun, ...], ...]
    seconds: float = 0.0

    def points(self, seed_index: int) -> list[frontier.Point]:
        return [frontier.Point(r.kl, r.reward) for r in self.runs[seed_index]
                if r.status == "ok" and r.kl is not None and r.reward is not None]

    def to_json(self) -> dict[str, Any]:
        return {"betas": list(self.betas), "seeds": list(self.seeds), "seconds": self.seconds,
                "runs": [[r.__dict__ for r in row] for row in self.runs]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alignment:
        runs = tuple(tuple(BetaRun(**r) for r in row) for row in data["runs"])
        return cls(tuple(data["betas"]), tuple(data["seeds"]), runs, float(data["seconds"]))


@dataclass(frozen=True)
class Evaluator:
    """The trusted side's view of the task: the reference, the tier's prompts and its R0."""

    task: PreferenceTask
    reference: CharGPT
    prompts: Any  # [N, P] character ids of the tier's held-out evaluation prompts
    r0: float

    def measure(self, weights: dict[str, Any], seed: int) -> frontier.Point:
        policy = CharGPT(self.task.prepare.gpt)
        policy.load_state_dict(weights)
        config = self.task.prepare
        return frontier.measure(policy, self.reference, self.prompts, config.eval_samples,
                                config.continuation_chars, seed)


@functools.cache
def evaluator(task: PreferenceTask) -> Evaluator:
    prepared = prepare.load(task.prepare)
    if prepared is None:
        raise RuntimeError("the preference task is not prepared: run `optforge prepare preference_loss` first")
    prompts = prepare.eval_prompts(task.prepare, task.tier)
    return Evaluator(task, prepared.reference(), prompts, prepared.r0(task.tier))


def align(source: str, kind: str, judge: Evaluator, runner: Runner, limit: Limits) -> Alignment:
    """Every (seed, beta) run of `source` on the task, one job each, all submitted at once."""
    task = judge.task
    cells = [(s, b) for s in range(len(task.seeds)) for b in range(len(task.betas))]
    recipe = dataclasses.asdict(task.recipe)
    jobs = [Job(ENTRY, {"action": "align", "kind": kind, "source": source, "betas": [task.betas[b]],
                        "seed": task.seeds[s], "recipe": recipe}, limit) for s, b in cells]
    results = runner.run_many(jobs)
    runs: dict[tuple[int, int], BetaRun] = {}
    for (s, b), result in zip(cells, results, strict=True):
        runs[s, b] = _beta_run(result, judge, task.seeds[s])
    grid = tuple(tuple(runs[s, b] for b in range(len(task.betas))) for s in range(len(task.seeds)))
    return Alignment(task.betas, task.seeds, grid, sum(r.wall_seconds for r in results))


def _beta_run(result: RunResult, judge: Evaluator, seed: int) -> BetaRun:
    if result.status != "ok":
        return BetaRun(result.status, error=result.error)
    try:
        ((weights, stopped),) = checked_align_result(1, result.tensors, result.meta, judge.task.recipe.steps,
                                                     judge.task.prepare.gpt)
    except InvalidResult as exc:
        return BetaRun("error", error=f"invalid result: {exc}")
    if not all(bool(torch.isfinite(w).all()) for w in weights.values()):
        return BetaRun("diverged", error="the policy's weights are not finite", stopped_at=stopped)
    try:
        point = judge.measure(weights, seed)
    except RuntimeError as exc:  # sampling from overflowing logits (inf - inf): the policy broke
        return BetaRun("diverged", error=f"the policy cannot be sampled: {first_line(exc)}", stopped_at=stopped)
    if not (math.isfinite(point.kl) and math.isfinite(point.reward)):
        return BetaRun("diverged", error="the policy's KL or reward is not finite", stopped_at=stopped)
    return BetaRun("ok", point.kl, point.reward, stopped_at=stopped)


def reference_alignment(
    kind: str, judge: Evaluator, runner: Runner, cache: BaselineCache, config: EvaluationConfig
) -> Alignment:
    """The runs of `kind`'s reference (DPO) on the task, from the cache or run now (never cached
    when a run failed)."""
    kind, name = kind_spec(kind).reference
    source = baseline_source(kind, name)
    key = hashlib.sha256(json.dumps({"task": judge.task.full_version(), "seeds": judge.task.seeds,
                                     "reference": hashlib.sha256(source.encode()).hexdigest(), "r0": judge.r0},
                                    sort_keys=True).encode()).hexdigest()[:32]
    cached = cache.load_json(key)
    if cached is not None:
        try:
            return Alignment.from_json(cached)
        except (KeyError, TypeError, ValueError):
            pass
    limit = Limits(wall_seconds=config.sandbox.job_timeout_s or UNMEASURED_TIMEOUT_S, memory_mb=config.sandbox.memory_mb)
    result = align(source, kind, judge, runner, limit)
    if all(r.status == "ok" for row in result.runs for r in row):
        cache.save_json(key, result.to_json())
    return result


def job_limit(reference: Alignment, config: EvaluationConfig) -> Limits:
    """A multiple of what one of DPO's runs cost, as a proxy task's jobs get of AdamW's."""
    sandbox = config.sandbox
    if sandbox.job_timeout_s is not None:
        return Limits(wall_seconds=sandbox.job_timeout_s, memory_mb=sandbox.memory_mb)
    runs = sum(len(row) for row in reference.runs)
    per_run = reference.seconds / runs if runs and reference.seconds > 0 else UNMEASURED_TIMEOUT_S / sandbox.timeout_multiple
    return Limits(wall_seconds=max(sandbox.min_job_timeout_s, sandbox.timeout_multiple * per_run),
                  memory_mb=sandbox.memory_mb)


def evaluate_preference(
    source: str, kind: str, tier: int, screened: EvaluationRecord, runner: Runner,
    config: EvaluationConfig, cache: BaselineCache, task: PreferenceTask | None = None,
) -> EvaluationRecord:
    """The preference task of `tier` (or `task`) for a candidate whose tier 0 (`screened`) passed."""
    started = time.perf_counter()
    judge = evaluator(task or preference_task(tier))
    reference = reference_alignment(kind, judge, runner, cache, config)
    # DPO itself (a campaign's seed) is the reference's very computation: same code, seeds, batches.
    same = source == baseline_source(*kind_spec(kind).reference)
    own = replace(reference, seconds=0.0) if same else align(source, kind, judge, runner, job_limit(reference, config))
    result = score(judge, own, reference)
    base = replace(screened, tier=tier, seeds=len(judge.task.seeds), seconds=time.perf_counter() - started,
                   task_versions={judge.task.name: judge.task.full_version()}, tasks=(result,))
    if result.status != "ok":
        return replace(base, status=result.status, error=f"{result.name}: {result.error}")
    return replace(base, score=result.score, score_ci=result.score_ci)


def score(judge: Evaluator, own: Alignment, reference: Alignment) -> TaskResult:
    """The task's result: AUC of each seed's hull, their mean over DPO's (clipped like every score),
    a paired t-interval over seeds when there are several, and the mean (beta, KL, reward) points."""
    task, name = judge.task, judge.task.name
    if any(not own.points(s) for s in range(len(own.seeds))):
        failed = next(r for row in own.runs for r in row if r.status != "ok")
        return TaskResult(name, failed.status, METRIC, error=failed.error, seconds=own.seconds)
    if any(not reference.points(s) for s in range(len(reference.seeds))):
        failed = next(r for row in reference.runs for r in row if r.status != "ok")
        return TaskResult(name, "sandbox_error", METRIC, error=f"the DPO reference failed: {failed.error}",
                          seconds=own.seconds)
    aucs = np.array([frontier.auc(frontier.hull(own.points(s), judge.r0), task.kl_cap) for s in range(len(own.seeds))])
    ref_aucs = np.array([frontier.auc(frontier.hull(reference.points(s), judge.r0), task.kl_cap)
                         for s in range(len(reference.seeds))])
    ratio = float(np.clip(aucs.mean() / ref_aucs.mean(), SCORE_FLOOR, SCORE_CAP)) if ref_aucs.mean() > 0 else SCORE_FLOOR
    diff_ci = t_interval(aucs - ref_aucs)
    score_ci = None if diff_ci is None else tuple(
        float(np.clip(1 + d / ref_aucs.mean(), SCORE_FLOOR, SCORE_CAP)) for d in diff_ci)
    return TaskResult(
        name, "ok", METRIC, score=ratio, score_ci=score_ci,  # type: ignore[arg-type]
        final=float(aucs.mean()), final_ci=t_interval(aucs), reference_final=float(ref_aucs.mean()),
        paired_diff_ci=diff_ci, seconds=own.seconds, seed_finals=tuple(float(a) for a in aucs),
        frontier=mean_points(own), reference_frontier=mean_points(reference),
    )



def mean_points(alignment: Alignment) -> tuple[tuple[float, float, float], ...]:
    """(beta, KL, reward) per beta, averaged over the seeds where that beta ran ("ok" runs only)."""
    points = []
    for b, beta in enumerate(alignment.betas):
        ok = [row[b] for row in alignment.runs if row[b].status == "ok"]
        if ok:
            points.append((beta, float(np.mean([r.kl for r in ok])), float(np.mean([r.reward for r in ok]))))
    return tuple(points)
