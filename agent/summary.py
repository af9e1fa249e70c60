"""What a campaign's archive says about it: one row per candidate and a campaign summary.

Pure reads of an `ArchiveStore`, no writes: `optforge status` runs this while a campaign writes
(WAL lets another process read), and the campaign runs it once more for its end-of-run report.
Rendering lives in agent/campaign_display.py.
"""

from __future__ import annotations

import math
import pathlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from optforge.archive import (
    ArchiveStore,
    CandidateRecord,
    EvaluationRecord,
    EventRecord,
    rank_score,
)

from .campaign_dir import config_in_force
from .progress import Best, Progress

SEED_PROPOSER = "seed"  # CandidateRecord.proposer of the bundled baselines
RUN_STARTS = ("start", "resume")
RUN_ENDS = ("stop", "interrupted")


@dataclass(frozen=True)
class CandidateRow:
    id: str
    name: str
    kind: str
    proposer: str
    island: int
    generation: int
    parent_ids: tuple[str, ...]
    status: str  # the status of its highest-tier evaluation; "pending" before any
    tier: int  # the highest tier evaluated; -1 before any
    score: float | None  # the archive's ranking score (tier 2 where evaluated, else tier 1)
    tier1_score: float | None
    tier1_ci: tuple[float, float] | None
    tier2_score: float | None
    tier2_ci: tuple[float, float] | None
    reused_from: str | None  # the candidate whose evaluation it reused (same tier-0 fingerprint)
    is_seed: bool


@dataclass(frozen=True)
class CampaignSummary:
    archive: pathlib.Path
    kind: str
    proposer: str  # as recorded by the last start/resume event ("" when none was)
    n_seeds: int
    done: int  # new candidates (seeds excluded): what counts against the budget
    budget: int  # max_candidates
    statuses: Counter[str]  # non-seed rows by status, "pending" included
    deduplicated: int  # non-seed candidates that reused another's evaluation
    duplicate_sources: int  # proposals whose normalized source was already archived
    proposal_failures: int  # proposals that produced no candidate
    llm_calls: int
    llm_errors: int
    llm_cost_usd: float
    champion: CandidateRow | None  # the incumbent named by the last "champion" event
    top: tuple[CandidateRow, ...]  # best rank score first, seeds included
    baselines: dict[str, CandidateRow] = field(default_factory=dict)  # seed name -> row
    stopped_reason: str | None = None  # None: no stop recorded after the last start/resume
    elapsed_s: float = 0.0  # over all runs, resumes included
    best: CandidateRow | None = None  # the best-ranked non-seed candidate with a score
    best_held_out: CandidateRow | None = None  # the non-seed candidate best on tier 2

    @property
    def budget_exhausted(self) -> bool:
        return self.done >= self.budget


def rows(store: ArchiveStore) -> list[CandidateRow]:
    """One row per candidate, in the order stored."""
    return _rows(store.candidates(), store.evaluations())


def _rows(
    candidates: Sequence[CandidateRecord], evaluations: Iterable[EvaluationRecord]
) -> list[CandidateRow]:
    evals: dict[str, list[EvaluationRecord]] = defaultdict(list)
    for e in evaluations:
        evals[e.candidate_id].append(e)
    return [candidate_row(c, evals.get(c.id, [])) for c in candidates]


def candidate_row(
    candidate: CandidateRecord, evaluations: Sequence[EvaluationRecord]
) -> CandidateRow:
    by_tier = {e.tier: e for e in evaluations}
    deepest = by_tier[max(by_tier)] if by_tier else None
    tier1, tier2 = by_tier.get(1), by_tier.get(2)
    return CandidateRow(
        id=candidate.id,
        name=candidate.name,
        kind=candidate.kind,
        proposer=candidate.proposer,
        island=candidate.island,
        generation=candidate.generation,
        parent_ids=candidate.parent_ids,
        status=deepest.status if deepest else "pending",
        tier=deepest.tier if deepest else -1,
        score=rank_score(evaluations),
        tier1_score=tier1.score if tier1 else None,
        tier1_ci=tier1.score_ci if tier1 else None,
        tier2_score=tier2.score if tier2 else None,
        tier2_ci=tier2.score_ci if tier2 else None,
        reused_from=next((e.reused_from for e in evaluations if e.reused_from), None),
        is_seed=candidate.proposer == SEED_PROPOSER,
    )


def ranked_rows(candidate_rows: Iterable[CandidateRow]) -> list[CandidateRow]:
    """Best rank score first, unscored last; ties keep storage order (sorted is stable)."""
    return sorted(candidate_rows, key=lambda r: -r.score if r.score is not None else math.inf)


def summarize(store: ArchiveStore, top: int = 10) -> CampaignSummary:
    # Read each table once: the same records give the rows and the run times.
    candidates, evaluations, events = store.candidates(), store.evaluations(), store.events()
    all_rows = _rows(candidates, evaluations)
    new = [r for r in all_rows if not r.is_seed]
    seeds = [r for r in all_rows if r.is_seed]
    ranked = ranked_rows(all_rows)
    counts = store.counts()
    config = store.config()
    return CampaignSummary(
        archive=pathlib.Path(store.path),
        kind=str(config.get("kind", "")),
        proposer=_proposer(events),
        n_seeds=len(seeds),
        done=len(new),
        budget=_budget(config, events),
        statuses=Counter(r.status for r in new),
        deduplicated=sum(1 for r in new if r.reused_from),
        duplicate_sources=sum(1 for e in events if e.kind == "duplicate_source"),
        proposal_failures=sum(1 for e in events if e.kind == "proposal_failed"),
        llm_calls=counts.llm_calls,
        llm_errors=counts.llm_errors,
        llm_cost_usd=counts.llm_cost_usd,
        champion=_champion(events, all_rows),
        top=tuple(ranked[: max(top, 0)]),
        baselines={r.name: r for r in seeds},
        stopped_reason=_stopped_reason(events),
        elapsed_s=elapsed_s(events, _times(candidates, evaluations, store.llm_calls(), events)),
        best=next((r for r in ranked if not r.is_seed and r.score is not None), None),
        best_held_out=_best_held_out(new),
    )


def _best_held_out(new: Sequence[CandidateRow]) -> CandidateRow | None:
    verified = [r for r in new if r.tier2_score is not None]
    return max(verified, key=lambda r: r.tier2_score or 0.0, default=None)


def _budget(config: dict[str, Any], events: Sequence[EventRecord]) -> int:
    """max_candidates in force: as created, or as the latest start/resume overrode it."""
    return config_in_force(config, events).budget.max_candidates


def _proposer(events: Sequence[EventRecord]) -> str:
    starts = [e for e in events if e.kind in RUN_STARTS]
    return str(starts[-1].data.get("proposer", "")) if starts else ""


def _champion(
    events: Sequence[EventRecord], candidate_rows: Sequence[CandidateRow]
) -> CandidateRow | None:
    named = [e.data.get("candidate_id") for e in events if e.kind == "champion"]
    if not named:
        return None
    return next((r for r in candidate_rows if r.id == named[-1]), None)


def _stopped_reason(events: Sequence[EventRecord]) -> str | None:
    """How the latest run ended; None when it recorded no end (still running, or killed)."""
    runs = [e for e in events if e.kind in RUN_STARTS + RUN_ENDS]
    if not runs or runs[-1].kind in RUN_STARTS:
        return None
    last = runs[-1]
    return "interrupted" if last.kind == "interrupted" else str(last.data.get("reason", "stopped"))


def _times(*tables: Sequence[Any]) -> list[float]:
    """Every record's creation time (each record type carries a `created_at`)."""
    return [float(record.created_at) for table in tables for record in table]


def elapsed_s(events: Sequence[EventRecord], times: Iterable[float]) -> float:
    """Wall time summed over runs: each run lasts from its start/resume event to the last record
    created before the next one. A killed run loses only the time after its last record, which is
    what the wall-clock budget counts too (config.BudgetConfig.max_wall_minutes)."""
    starts = sorted(e.created_at for e in events if e.kind in RUN_STARTS)
    stamps = sorted(times)
    total = 0.0
    for i, begin in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else math.inf
        inside = [t for t in stamps if begin <= t < end]
        total += max(inside, default=begin) - begin
    return total


def progress_of(
    summary: CampaignSummary,
    *,
    proposer: str,
    phase: str,
    budget: int,
    generation: int,
    elapsed_s: float,
    eta_s: float | None,
) -> Progress:
    """The display's snapshot of a running campaign: the archive's counts plus the loop's clock."""
    champion = summary.champion
    best = None
    if champion is not None and champion.score is not None:
        held_out = champion.tier2_score is not None
        ci = champion.tier2_ci if held_out else champion.tier1_ci
        best = Best(champion.id, champion.name, champion.score, ci, 2 if held_out else 1)
    return Progress(
        archive=summary.archive,
        kind=summary.kind,
        proposer=proposer,
        done=summary.done,
        budget=budget,
        phase=phase,
        generation=generation,
        seeds=summary.n_seeds,
        best=best,
        statuses=dict(summary.statuses),
        deduplicated=summary.deduplicated,
        duplicate_sources=summary.duplicate_sources,
        proposal_failures=summary.proposal_failures,
        llm_calls=summary.llm_calls,
        llm_errors=summary.llm_errors,
        llm_cost_usd=summary.llm_cost_usd,
        elapsed_s=elapsed_s,
        eta_s=eta_s,
    )
