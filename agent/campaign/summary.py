"""What a campaign's archive says about it: one row per candidate and a campaign summary.

Pure reads of an `ArchiveStore`, no writes: `optforge status` runs this while a campaign writes
(WAL lets another process read), and the campaign runs it once more for its end-of-run report.
Rendering lives in agent/cli/campaign_display.py.

Rankings are verified-first (`ranked_rows`, archive `rank_key`): candidates verified on held-out
tier 2, by their tier-2 score, above tier-1-only ones, by their tier-1 score (tier-1 scores run
higher, so mixing the two would put unverified screen winners above the verified best). The
champion is agent/campaign/rules.py's rule, computed from the records (so an archive made under an older
rule shows the champion by this one), and the bar (`Bar`) puts the best new candidate against tuned
AdamW and against the best tuned baseline on tier 2, paired seed by seed.
"""

from __future__ import annotations

import math
import pathlib
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from optforge.agent.campaign.directory import config_in_force
from optforge.agent.campaign.rules import Champion, best_baseline, champion
from optforge.archive import (
    ArchiveStore,
    CandidateRecord,
    EvaluationRecord,
    EventRecord,
    LLMCallRecord,
    rank_key,
    rank_score,
)

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

    @property
    def verified(self) -> bool:
        """Passed held-out tier 2: `score` is its tier-2 score, and it ranks first."""
        return self.tier2_score is not None

    @property
    def score_tier(self) -> int | None:
        """The tier `score` comes from (None when unscored)."""
        if self.score is None:
            return None
        return 2 if self.verified else 1

    @property
    def score_ci(self) -> tuple[float, float] | None:
        """The CI of `score`: tier 2's where verified, else tier 1's."""
        if self.score is None:
            return None
        return self.tier2_ci if self.verified else self.tier1_ci


@dataclass(frozen=True)
class Bar:
    """The best new candidate against tuned AdamW (its score) and against the best tuned baseline
    (the seed with the best tier-2 score), both on held-out tier 2."""

    candidate: CandidateRow | None  # the best new candidate (verified first); None: none scored
    baseline: CandidateRow | None  # None when no seed has a tier-2 score (cascade.seeds_tier2 off)
    # Paired over seeds and tasks: the baseline's held-out finals over the candidate's, geometric
    # mean over tasks (> 1: the candidate is better), with its 95% bootstrap CI. None when either is
    # missing or the two cannot be paired (other task versions or seeds).
    ratio: float | None = None
    ci: tuple[float, float] | None = None
    seeds: int = 0  # seeds per task in the comparison
    tasks: int = 0


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
    llm_errors: int  # calls that failed (every attempt): no reply
    llm_cost_usd: float  # calls with no known price count as $0
    champion: CandidateRow | None  # the best new candidate on tier 2 (agent/campaign/rules.py `champion`)
    top: tuple[CandidateRow, ...]  # verified first (see `ranked_rows`), seeds included
    baselines: dict[str, CandidateRow] = field(default_factory=dict)  # seed name -> row
    stopped_reason: str | None = None  # None: no stop recorded after the last start/resume
    elapsed_s: float = 0.0  # over all runs, resumes included
    best: CandidateRow | None = None  # the best-ranked non-seed candidate with a score
    champion_lead: Champion | None = None  # the champion's tier-2 score and lead over the next
    bar: Bar | None = None  # None before any new candidate has a score
    llm_rejected: int = 0  # replies the proposer could not use (unparsable, or breaking the contract)
    llm_tokens_in: int = 0
    llm_tokens_out: int = 0
    llm_latency_median_s: float | None = None  # over the calls that got a reply; None: none did
    llm_unpriced: int = 0  # calls that got a reply but whose model has no known price

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


RankBy = Literal["tier2", "tier1"]


def ranked_rows(candidate_rows: Iterable[CandidateRow], by: RankBy = "tier2") -> list[CandidateRow]:
    """Best first, unscored last; ties keep storage order (sorted is stable).

    "tier2" (the archive's ranking): verified on tier 2 first, by tier-2 score, then tier-1-only
    ones by tier-1 score. "tier1": by tier-1 score alone (the screen's view)."""
    if by == "tier1":
        return sorted(
            candidate_rows, key=lambda r: -r.tier1_score if r.tier1_score is not None else math.inf
        )
    return sorted(candidate_rows, key=lambda r: rank_key(r.verified, r.score))


@dataclass(frozen=True)
class ArchiveSnapshot:
    """Everything a summary reads, table by table: from the file (`summarize`) or from the running
    campaign's memory (agent/campaign/state.py), so the loop's display never re-reads the file."""

    path: pathlib.Path
    config: dict[str, Any]
    candidates: Sequence[CandidateRecord]
    evaluations: Sequence[EvaluationRecord]
    events: Sequence[EventRecord]
    llm_calls: Sequence[LLMCallRecord]


def summarize(store: ArchiveStore, top: int = 10) -> CampaignSummary:
    """The summary of the archive in `store`, each table read once."""
    snapshot = ArchiveSnapshot(pathlib.Path(store.path), store.config(), store.candidates(),
                               store.evaluations(), store.events(), store.llm_calls())
    return summarize_snapshot(snapshot, top)


def summarize_snapshot(archive: ArchiveSnapshot, top: int = 10) -> CampaignSummary:
    candidates, evaluations, events = archive.candidates, archive.evaluations, archive.events
    all_rows = _rows(candidates, evaluations)
    new = [r for r in all_rows if not r.is_seed]
    seeds = [r for r in all_rows if r.is_seed]
    ranked = ranked_rows(all_rows)
    best = next((r for r in ranked if not r.is_seed and r.score is not None), None)
    lead = champion(evaluations, {r.id for r in new})
    config = archive.config
    return CampaignSummary(
        archive=archive.path,
        kind=str(config.get("kind", "")),
        proposer=_proposer(events),
        n_seeds=len(seeds),
        done=len(new),
        budget=_budget(config, events),
        statuses=Counter(r.status for r in new),
        deduplicated=sum(1 for r in new if r.reused_from),
        duplicate_sources=sum(1 for e in events if e.kind == "duplicate_source"),
        proposal_failures=sum(1 for e in events if e.kind == "proposal_failed"),
        **llm_figures(archive.llm_calls),
        champion=next((r for r in new if lead is not None and r.id == lead.candidate_id), None),
        top=tuple(ranked[: max(top, 0)]),
        baselines={r.name: r for r in seeds},
        stopped_reason=_stopped_reason(events),
        elapsed_s=elapsed_s(events, _times(candidates, evaluations, archive.llm_calls, events)),
        best=best,
        champion_lead=lead,
        bar=_bar(best, seeds, evaluations),
    )


def llm_figures(calls: Sequence[LLMCallRecord]) -> dict[str, Any]:
    """The summary's llm_* fields: counts, tokens, the median latency and the cost of `calls`."""
    answered = [call for call in calls if call.error is None]
    latencies = [call.latency_s for call in answered]
    return {
        "llm_calls": len(calls),
        "llm_errors": len(calls) - len(answered),
        "llm_cost_usd": sum(call.cost_usd or 0.0 for call in calls),
        "llm_rejected": sum(call.rejected is not None for call in calls),
        "llm_tokens_in": sum(call.tokens_in for call in calls),
        "llm_tokens_out": sum(call.tokens_out for call in calls),
        "llm_latency_median_s": statistics.median(latencies) if latencies else None,
        "llm_unpriced": sum(call.cost_usd is None for call in answered),
    }


def _bar(
    best: CandidateRow | None,
    seeds: Sequence[CandidateRow],
    evaluations: Sequence[EvaluationRecord],
) -> Bar | None:
    """`best` against the seed with the best tier-2 score (agent/campaign/rules.py `best_baseline`)."""
    if best is None:
        return None
    seed_ids = {r.id for r in seeds}
    tier2 = [e for e in evaluations if e.tier == 2]
    mine = next((e for e in tier2 if e.candidate_id == best.id and e.passed), None)
    baseline, comparison = best_baseline(mine, [e for e in tier2 if e.candidate_id in seed_ids])
    row = next((r for r in seeds if baseline is not None and r.id == baseline.candidate_id), None)
    if comparison is None or mine is None:
        return Bar(best, row)
    ratio, ci = comparison
    return Bar(best, row, ratio, ci, mine.seeds, len(mine.tasks))


def _budget(config: dict[str, Any], events: Sequence[EventRecord]) -> int:
    """max_candidates in force: as created, or as the latest start/resume overrode it."""
    return config_in_force(config, events).budget.max_candidates


def _proposer(events: Sequence[EventRecord]) -> str:
    starts = [e for e in events if e.kind in RUN_STARTS]
    return str(starts[-1].data.get("proposer", "")) if starts else ""


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
