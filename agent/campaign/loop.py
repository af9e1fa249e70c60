"""The discovery campaign loop: the only code that writes a campaign's archive (DESIGN.md, principle 2).

`Campaign._search` is the loop, one new candidate per turn; each step is one collaborator:

    select parents (campaign_selection.py: islands, MAP-Elites, migration) -> propose
    -> dedupe by source (the archive's content hash) -> tier 0, dedupe by behaviour -> tier 1
    -> tier 2 for every current tier-1 leader not yet verified -> the champion, re-decided
       whenever a tier-2 result lands (campaign_cascade.py, rules in cascade.py)
    -> the display (campaign_progress.py, figures from summary.py)

Before the loop: the bundled baselines of the kind are seeded over the islands, and whatever a
killed run left pending is done first (in storage order). The archive is read once, when the
campaign opens it (campaign_state.py); every write goes through that in-memory mirror.

Crash safety comes from the order of writes, each one a transaction: a candidate is stored before
it is evaluated, each tier's evaluation as it lands, the cascade decision as an event. After a
SIGKILL, what the archive holds says exactly what is left to do (`_catch_up`), so no evaluated
candidate is lost and none is evaluated twice. Which tier-2 evaluations are owed and who is champion
are pure functions of the archive, so a resume recomputes them rather than trusting a decision a
killed run may not have written. Budgets count what the archive holds, so work done before a resume
counts.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from optforge.agent.campaign import records as records
from optforge.agent.campaign.cascade import Cascade
from optforge.agent.campaign.clock import CampaignClock, ProgressReporter
from optforge.agent.campaign.parts import CampaignParts
from optforge.agent.campaign.selection import ParentSelection
from optforge.agent.campaign.state import CampaignArchive
from optforge.agent.campaign.summary import SEED_PROPOSER
from optforge.agent.config import CampaignConfig
from optforge.agent.proposers.base import Proposal, ProposalFailed, ProposalRequest, Proposer
from optforge.archive import ArchiveStore, CandidateRecord, EventRecord, seed_islands
from optforge.tasks.baselines import baseline_source

__all__ = ["MAX_FRUITLESS", "Campaign", "CampaignParts"]

# Proposals in a row that yield no new candidate (failures, already-archived sources) before the
# campaign gives up: a mutator stuck on a tiny population, or an LLM endpoint that keeps failing.
MAX_FRUITLESS = 50


class Campaign:
    def __init__(self, store: ArchiveStore, config: CampaignConfig, parts: CampaignParts):
        self.config, self.parts, self.kind = config, parts, config.kind
        self.archive = CampaignArchive(store)  # read once; every write below goes through it
        self.selection = ParentSelection(self.archive, config)
        self.cascade = Cascade(self.archive, config, parts, phase=self._set_phase)
        self.clock = CampaignClock(self.archive, parts)
        self.progress = ProgressReporter(self.archive, config, parts, self.clock)
        self._phase = "starting"
        self._fruitless = 0

    # -- the loop -------------------------------------------------------------------------------

    def run(self, overrides: dict[str, Any] | None = None) -> str:
        """Run until a budget is spent; returns why it stopped. Ctrl-C records an "interrupted"
        event and re-raises; a SIGKILL records nothing and loses nothing (see the module doc)."""
        resumed = bool(self.archive.candidates)
        self.clock.start()
        self._event("resume" if resumed else "start",
                    {"proposer": self.parts.proposer.name, "overrides": overrides or {}})
        rng = random.Random(
            f"{self.config.seed}:{len(self.archive.candidates)}:{len(self.archive.events)}"
        )
        try:
            self._seed()
            self._catch_up()
            reason = self._search(rng)
        except KeyboardInterrupt:
            self._event("interrupted", {})
            raise
        self._phase = f"stopped: {reason}"
        self._event("stop", {"reason": reason})
        self._report()
        return reason

    def _search(self, rng: random.Random) -> str:
        """One new candidate per turn: select parents and propose, dedupe by source, tier 0 (and
        dedupe by behaviour), tier 1, tier 2 for the tier-1 leaders, promote the champion."""
        self.clock.search_started = self.parts.clock()
        with self._proposals(rng) as next_proposal:  # requests carry parents selected on an island
            while (reason := self._stop_reason()) is None:
                self._migrate()
                self._set_phase("proposing")
                island, outcome = next_proposal()
                candidate = self._stored(outcome, island)  # None: failed, or its source is archived
                if candidate is not None and self.cascade.screen(candidate):  # tiers 0 and 1
                    self.cascade.verify_leaders(self._out_of_time)  # tier 2 and the champion
                self._report()
                if self._fruitless >= MAX_FRUITLESS:
                    return f"{MAX_FRUITLESS} proposals in a row produced no new candidate"
        return reason

    def _catch_up(self) -> None:
        """Whatever a killed run left pending, in storage order, then what it left owed."""
        for candidate in list(self.archive.candidates):
            if self.cascade.screen(candidate):
                self.cascade.verify_leaders(self._out_of_time)
            self._report()
        self.cascade.verify_leaders(self._out_of_time)
        self.cascade.crown()  # an archive from before the tier-2 champion rule gets it here

    def _stop_reason(self) -> str | None:
        budget = self.config.budget
        if self.archive.done() >= budget.max_candidates:
            return f"budget reached: {budget.max_candidates} candidates"
        if budget.max_llm_cost_usd is not None:
            spent = self.archive.llm_cost_usd()
            if spent >= budget.max_llm_cost_usd:
                return f"LLM cost budget reached: ${spent:.2f} of ${budget.max_llm_cost_usd:.2f}"
        if self._out_of_time():
            return f"wall-time budget reached: {budget.max_wall_minutes:g} minutes"
        return None

    def _out_of_time(self) -> bool:
        limit = self.config.budget.max_wall_minutes
        return limit is not None and self.clock.elapsed() >= 60 * limit

    # -- seeds, proposals, migration -------------------------------------------------------------

    def _seed(self) -> None:
        """Store the bundled baselines of the kind, dealt over the islands. Idempotent: a run
        killed half-way through seeding completes it on resume with the same placement."""
        names = self.config.seed_names()
        seeds = [
            CandidateRecord.new(baseline_source(self.kind, n), self.kind, n, proposer=SEED_PROPOSER)
            for n in names
        ]
        plan = seed_islands([s.id for s in seeds], self.selection.params.n_islands)
        for seed in seeds:  # a seed already stored is not stored again (add_candidate is idempotent)
            self.archive.add_candidate(dataclasses.replace(seed, island=plan.births[seed.id]))
        event = plan.event()
        if event is not None and not self.archive.events_of(event.kind):
            self.archive.add_event(event)

    @contextmanager
    def _proposals(
        self, rng: random.Random
    ) -> Iterator[Callable[[], tuple[int, Proposal | ProposalFailed]]]:
        """Proposals in request order; an LLM proposer gets up to `max_concurrency` requests in
        flight while the loop evaluates (each request sees the archive as it was when made)."""
        ahead = self.config.llm.max_concurrency if self.parts.proposer.name != "mutate" else 1
        pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="propose")
        # Each request is for one island, where its first parent was sampled: the child is born
        # there (the island invariant), so the island travels with the request.
        queue: list[tuple[int, Future[Proposal | ProposalFailed]]] = []
        turn = self.archive.done()  # round-robin over islands, continued across resumes

        def submit() -> None:
            nonlocal turn
            island = turn % self.selection.params.n_islands
            request = self.selection.request(island, rng)
            proposer_rng = random.Random(rng.getrandbits(64))
            queue.append(
                (island, pool.submit(_propose, self.parts.proposer, request, proposer_rng))
            )
            turn += 1

        def next_proposal() -> tuple[int, Proposal | ProposalFailed]:
            # No more requests in flight than new candidates the budget still takes: a proposal
            # requested past the budget would be paid for and thrown away.
            room = self.config.budget.max_candidates - self.archive.done()
            while len(queue) < max(1, min(ahead, room)):
                submit()
            island, future = queue.pop(0)
            return island, future.result()

        try:
            yield next_proposal
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            # Proposals that came back unused (a cost or wall-time stop): their calls were paid for.
            for _, future in queue:
                if future.done() and not future.cancelled() and future.exception() is None:
                    for call in future.result().llm_calls:
                        self.archive.add_llm_call(call)

    def _migrate(self) -> None:
        generation = self._generation()
        moved = self.selection.migrate(generation)
        if moved is not None:
            self.parts.on_log(f"generation {generation}: migrated {moved} elites around the ring")

    def _stored(self, outcome: Proposal | ProposalFailed, island: int) -> CandidateRecord | None:
        """The proposal stored as a new candidate; None when it failed or its source is archived."""
        if isinstance(outcome, ProposalFailed):
            self._proposal_failed(outcome)
            return None
        record = records.candidate_record(outcome, self.kind, island, self._generation())
        # Every call of the proposal is stored under the candidate: the rejected first reply of a
        # repaired proposal too (its `rejected` says why), and a duplicate's under the one it repeats.
        if not self.archive.add_candidate(record, outcome.llm_calls):
            self._fruitless += 1
            self._event("duplicate_source", {"candidate_id": record.id, "proposer": outcome.proposer})
            return None
        self._fruitless = 0
        return record

    def _proposal_failed(self, failure: ProposalFailed) -> None:
        self._fruitless += 1
        # No candidate: each call keeps its prompt and reply, and why it was rejected (or its error).
        for call in failure.llm_calls:
            self.archive.add_llm_call(call)
        self._event("proposal_failed", {"proposer": self.parts.proposer.name, "error": str(failure)})
        self.parts.on_log(f"proposal failed: {failure}")

    # -- records and reporting ------------------------------------------------------------------

    def _event(self, kind: str, data: dict) -> None:
        self.archive.add_event(EventRecord(kind, data, created_at=self.parts.clock()))

    def _generation(self) -> int:
        return 1 + self.archive.done() // self.selection.params.n_islands

    def _set_phase(self, phase: str) -> None:
        self._phase = phase
        self._report()

    def _report(self) -> None:
        self.progress.report(self._phase, self._generation())


def _propose(
    proposer: Proposer, request: ProposalRequest, rng: random.Random
) -> Proposal | ProposalFailed:
    """One proposal, with a failure returned rather than raised so it crosses the thread pool as data."""
    try:
        return proposer.propose(request, rng)
    except ProposalFailed as failure:
        return failure
