"""The cascade's decisions, as pure functions over stored records.

Who earns a held-out (tier-2) evaluation: the current top `tier2_top_k` of tier 1 (`tier1_leaders`).
After every tier-1 result the campaign verifies each leader that has no tier-2 evaluation yet
(`tier2_owed`), so whoever leads tier 1 now has been verified, however late it arrived. A rule that
looked only at the newcomer ("is it in the top 2% of the tier-1 scores so far?") sent early
record-holders to tier 2 and never the candidates that later filled ranks 5-13. The pool is the
campaign's new candidates (seeds go to tier 2 by `seeds_tier2` alone) that passed tier 1 at the
current tier-1 task versions, scored at least `tier2_min_score`, are not copies of another's
evaluation (a behavioural twin stands for the same program) and have not failed tier 2 (a candidate
that breaks on held-out tasks is out of the running, and the next one moves up).

Who is the campaign's champion: decided on tier-2 scores against tier-2 scores (`champion`). It is
the verified new candidate with the best tier-2 score at the current tier-2 task versions (ties: the
earlier); its lead over the runner-up is a paired comparison of their held-out finals, seed by seed
and task by task, reported with its 95% CI, so a lead within seed noise is shown as such.

Why the best estimate holds the title rather than an incumbent defended by a significance test (the
rule before): the incumbent was whoever came first, compared with challengers at tier 1 when it had
no tier-2 result, never again compared with a challenger that had lost once, and kept forever when
two evaluations could not be paired (other task versions). A 20-candidate campaign ended with a
champion that tier 2 put significantly below tuned AdamW (0.982 [0.970, 0.996]), 7th in its own
table. Significance is for saying how sure the ranking is, not for crowning the first arrival: here
every verified candidate is compared, the title moves only when a better tier-2 score arrives, and
the CI of the lead says whether the champion is ahead beyond noise.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from optforge.agent.config import CascadeConfig
from optforge.archive import EvaluationRecord


def tier1_leaders(
    evaluations: Iterable[EvaluationRecord], eligible: Collection[str], cascade: CascadeConfig, kind: str
) -> list[str]:
    """Ids of the current top `tier2_top_k` of tier 1 among the `eligible` candidates (the
    campaign's new ones, of `kind`), best first; equal scores keep storage order."""
    evaluations = list(evaluations)
    failed_held_out = {e.candidate_id for e in evaluations if e.tier == 2 and not e.passed}
    tier1 = [
        e
        for e in evaluations
        if e.tier == 1 and e.candidate_id in eligible and _scored(e) and e.reused_from is None
    ]
    versions = current_versions(tier1)
    pool = [
        e
        for e in tier1
        if e.task_versions == versions
        and (e.score or 0.0) >= cascade.min_score(kind)
        and e.candidate_id not in failed_held_out
    ]
    pool.sort(key=lambda e: -(e.score or 0.0))  # stable: ties keep storage order
    return [e.candidate_id for e in pool[: cascade.tier2_top_k]]


def tier2_owed(
    evaluations: Iterable[EvaluationRecord], eligible: Collection[str], cascade: CascadeConfig, kind: str
) -> list[str]:
    """The tier-1 leaders with no tier-2 evaluation yet, best first: what to verify now."""
    evaluations = list(evaluations)
    verified = {e.candidate_id for e in evaluations if e.tier == 2}
    return [c for c in tier1_leaders(evaluations, eligible, cascade, kind) if c not in verified]


@dataclass(frozen=True)
class Champion:
    """The campaign's best on held-out tasks, and how far ahead of the next it is."""

    candidate_id: str
    score: float  # its tier-2 score (x the kind's reference: tuned AdamW, DPO, ...)
    score_ci: tuple[float, float] | None
    runner_up: str | None = None  # the next-best verified candidate; None when it is the only one
    runner_up_score: float | None = None
    # Paired over seeds and tasks: the runner-up's held-out finals over the champion's, geometric
    # mean over tasks (> 1: the champion is ahead). None when there is no runner-up or the two
    # cannot be paired.
    ratio: float | None = None
    ci: tuple[float, float] | None = None

    @property
    def significant(self) -> bool:
        """Whether the lead over the runner-up is beyond seed noise (its 95% CI excludes 1)."""
        return self.ci is not None and self.ci[0] > 1.0


def champion(evaluations: Iterable[EvaluationRecord], eligible: Collection[str]) -> Champion | None:
    """The best tier-2 score among the `eligible` candidates verified at the current tier-2 task
    versions (see the module docstring); None before any is verified."""
    verified = [
        e
        for e in evaluations
        if e.tier == 2 and e.candidate_id in eligible and _scored(e) and e.reused_from is None
    ]
    versions = current_versions(verified)
    pool = sorted(
        (e for e in verified if e.task_versions == versions), key=lambda e: -(e.score or 0.0)
    )
    if not pool:
        return None
    best = pool[0]
    crowned = Champion(best.candidate_id, best.score or 0.0, best.score_ci)
    if len(pool) == 1:
        return crowned
    second = pool[1]
    lead = paired_comparison(best, second)
    ratio, ci = lead if lead is not None else (None, None)
    return Champion(
        best.candidate_id,
        best.score or 0.0,
        best.score_ci,
        second.candidate_id,
        second.score,
        ratio,
        ci,
    )


def paired_comparison(
    a: EvaluationRecord, b: EvaluationRecord
) -> tuple[float, tuple[float, float]] | None:
    """How much better `a` is than `b` at their (common) tier: the geometric mean over tasks of
    b's mean final held-out metric over a's (> 1: `a` better; a's over b's for a metric where
    higher is better, the preference task's area) with a 95% bootstrap CI over seeds; None when
    the two cannot be paired (other tasks, task versions or seeds)."""
    # Imported here: tasks.scoring imports torch, and the summary and review commands import this
    # module only for this function, on archives that may hold no tier-2 result at all.
    from optforge.tasks.scoring import paired_ratio

    pairs = _paired_finals(a, b)
    return paired_ratio(*pairs) if pairs is not None else None


def current_versions(evaluations: Sequence[EvaluationRecord]) -> dict[str, str]:
    """The task versions of the latest of `evaluations` (scores compare only at equal versions);
    {} when there are none."""
    if not evaluations:
        return {}
    return dict(max(evaluations, key=lambda e: e.created_at).task_versions)


def _scored(e: EvaluationRecord) -> bool:
    return e.passed and e.score is not None


def _paired_finals(
    a: EvaluationRecord, b: EvaluationRecord
) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """Per-task per-seed finals of both, matched by task; None when they cannot be paired (other
    tasks or seeds, e.g. evaluated under another config)."""
    from optforge.tasks.scoring import HIGHER_IS_BETTER

    finals_a = {t.name: t.seed_finals for t in a.tasks}
    finals_b = {t.name: t.seed_finals for t in b.tasks}
    if not finals_a or set(finals_a) != set(finals_b) or a.task_versions != b.task_versions:
        return None
    names = sorted(finals_a)
    if any(not finals_a[n] or len(finals_a[n]) != len(finals_b[n]) for n in names):
        return None
    higher = {t.name for t in a.tasks if t.metric in HIGHER_IS_BETTER}
    # paired_ratio divides the second side's finals by the first's: swap where higher is better.
    first = [np.array((finals_b if n in higher else finals_a)[n]) for n in names]
    second = [np.array((finals_a if n in higher else finals_b)[n]) for n in names]
    return first, second


def best_baseline(
    mine: EvaluationRecord | None, baselines: Sequence[EvaluationRecord]
) -> tuple[EvaluationRecord | None, tuple[float, tuple[float, float]] | None]:
    """The bar on tier 2: the best-scoring of the `baselines`' passed tier-2 evaluations (among those
    that pair with `mine` when any does: the same tasks at the same versions), and `mine`'s paired
    comparison against it (see `paired_comparison`; None without `mine` or when they do not pair)."""
    scored = sorted(
        (b for b in baselines if b.tier == 2 and _scored(b)), key=lambda b: -(b.score or 0.0)
    )
    if not scored:
        return None, None
    if mine is None:
        return scored[0], None
    pairable = [b for b in scored if b.task_versions == mine.task_versions]
    baseline = (pairable or scored)[0]
    return baseline, paired_comparison(mine, baseline)
