"""The campaign's archive as the loop sees it: read once, then kept in memory as the loop writes.

The loop is the archive's only writer (DESIGN.md, principle 2), so every write goes through
`CampaignArchive`, which stores it (one transaction, as before) and appends it to its own lists.
Selection, the cascade and the progress display then read those lists: no step of the loop goes
back to SQLite to re-read the whole archive for each candidate. Readers in other processes
(`optforge status`) still read the file, which holds exactly what these lists hold.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable
from typing import Any

from optforge.agent.campaign.summary import SEED_PROPOSER, ArchiveSnapshot
from optforge.archive import (
    ArchiveStore,
    CandidateRecord,
    EvaluationRecord,
    EventRecord,
    LLMCallRecord,
)


class CampaignArchive:
    def __init__(self, store: ArchiveStore):
        self.store = store
        self.path = pathlib.Path(store.path)
        self.config: dict[str, Any] = store.config()
        self.candidates: list[CandidateRecord] = []
        self.evaluations: list[EvaluationRecord] = []
        self.events: list[EventRecord] = store.events()
        self.llm_calls: list[LLMCallRecord] = store.llm_calls()
        self._by_id: dict[str, CandidateRecord] = {}
        self._tiers: dict[str, dict[int, EvaluationRecord]] = {}
        for candidate in store.candidates():
            self._remember_candidate(candidate)
        for evaluation in store.evaluations():
            self._remember_evaluation(evaluation)

    # -- writes: to the file, then to memory ----------------------------------------------------

    def add_candidate(self, record: CandidateRecord, llm_calls: Iterable[LLMCallRecord] = ()) -> bool:
        """Store a candidate and the calls that made it; False (calls stored) when its source was
        already archived."""
        calls = list(llm_calls)
        new = self.store.add_candidate(record, calls)
        self.llm_calls += [dataclasses.replace(call, candidate_id=record.id) for call in calls]
        if new:
            self._remember_candidate(record)
        return new

    def add_evaluation(self, record: EvaluationRecord) -> None:
        self.store.add_evaluation(record)
        self._remember_evaluation(record)

    def add_event(self, record: EventRecord) -> None:
        self.store.add_event(record)
        self.events.append(record)

    def add_llm_call(self, record: LLMCallRecord) -> None:
        self.store.add_llm_call(record)
        self.llm_calls.append(record)

    # -- reads ----------------------------------------------------------------------------------

    def candidate(self, candidate_id: str) -> CandidateRecord:
        return self._by_id[candidate_id]

    def tiers(self, candidate_id: str) -> dict[int, EvaluationRecord]:
        """The candidate's evaluations by tier (a copy)."""
        return dict(self._tiers.get(candidate_id, {}))

    def of_tiers(self, *tiers: int) -> list[EvaluationRecord]:
        """The evaluations of these tiers, in the order stored."""
        return [e for e in self.evaluations if e.tier in tiers]

    def new_ids(self) -> set[str]:
        """The candidates the campaign proposed (the seeds excluded)."""
        return {c.id for c in self.candidates if c.proposer != SEED_PROPOSER}

    def done(self) -> int:
        """New candidates stored: what counts against the budget, work before a resume included."""
        return sum(c.proposer != SEED_PROPOSER for c in self.candidates)

    def events_of(self, kind: str) -> list[EventRecord]:
        return [e for e in self.events if e.kind == kind]

    def original_behaving_like(self, fingerprint: str) -> EvaluationRecord | None:
        """The earliest tier-0 evaluation with this behaviour fingerprint that was not itself reused."""
        return next(
            (e for e in self.evaluations
             if e.tier == 0 and e.fingerprint == fingerprint and e.reused_from is None),
            None,
        )

    def llm_cost_usd(self) -> float:
        return sum(call.cost_usd or 0.0 for call in self.llm_calls)

    def snapshot(self) -> ArchiveSnapshot:
        """What `summary.summarize` reads, without reading the file."""
        return ArchiveSnapshot(self.path, self.config, self.candidates, self.evaluations, self.events,
                               self.llm_calls)

    def _remember_candidate(self, record: CandidateRecord) -> None:
        self.candidates.append(record)
        self._by_id[record.id] = record

    def _remember_evaluation(self, record: EvaluationRecord) -> None:
        self.evaluations.append(record)
        self._tiers.setdefault(record.candidate_id, {})[record.tier] = record
