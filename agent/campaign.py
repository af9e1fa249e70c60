"""The discovery campaign loop: the only code that writes a campaign's archive (DESIGN.md, principle 2).

    seed the islands with the bundled baselines of the kind
    redo whatever a killed run left pending (in storage order)
    until a budget runs out:
        migrate elites around the ring when a generation calls for it
        select parents on the next island -> propose -> store the candidate
        -> tier 0 (dedupe by behaviour fingerprint) -> tier 1
        -> tier 2 for every current tier-1 leader not yet verified (agent/cascade.py)
        -> the champion: the best tier-2 score, re-decided whenever a tier-2 result lands

Crash safety comes from the order of writes, each one a transaction: a candidate is stored before
it is evaluated, each tier's evaluation as it lands, the cascade decision as an event. After a
SIGKILL, what the archive holds says exactly what is left to do (`_advance`), so no evaluated
candidate is lost and none is evaluated twice. Which tier-2 evaluations are owed and who is champion
are pure functions of the archive, so a resume recomputes them rather than trusting a decision a
killed run may not have written. Budgets count what the archive holds, so work done before a resume
counts.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from optforge.archive import (
    ArchiveStore,
    CandidateRecord,
    EvaluationRecord,
    EventRecord,
    SelectionParams,
    build_members,
    build_population,
    migration_done,
    migration_due,
    migration_event,
    plan_migration,
    prompt_history,
    sample_inspirations,
    sample_parents,
    seed_islands,
)
from optforge.sandbox import Runner
from optforge.tasks.baselines import baseline_names, baseline_source

from . import campaign_records as records
from .baseline_cache import BaselineCache
from .cascade import champion, tier1_leaders, tier2_owed
from .config import CampaignConfig
from .evaluation import Evaluation, contract_rejection, evaluate_tasks, run_tier0
from .progress import Progress
from .proposers.base import Proposal, ProposalFailed, ProposalRequest, Proposer
from .runtime import code_commit
from .summary import SEED_PROPOSER, progress_of, summarize

# Proposals in a row that yield no new candidate (failures, already-archived sources) before the
# campaign gives up: a mutator stuck on a tiny population, or an LLM endpoint that keeps failing.
MAX_FRUITLESS = 50


@dataclass(frozen=True)
class CampaignParts:
    """What a campaign runs on, injected so tests can use fakes (DESIGN.md, principle 3)."""

    runner: Runner
    cache: BaselineCache
    proposer: Proposer
    on_progress: Callable[[Progress], None] = lambda progress: None
    on_log: Callable[[str], None] = lambda line: None
    clock: Callable[[], float] = time.time


class Campaign:
    def __init__(self, store: ArchiveStore, config: CampaignConfig, parts: CampaignParts):
        self.store, self.config, self.parts = store, config, parts
        self.kind = config.kind
        self.params = SelectionParams(
            n_islands=config.search.islands,
            migration_interval=config.search.migration_interval,
            exploitation=config.search.exploitation,
            temperature=config.search.temperature,
            inspirations=config.search.inspirations,
        )
        self._config_hash = records.evaluation_config_hash(config.evaluation)
        self._commit = code_commit()
        self._phase = "starting"
        self._fruitless = 0
        self._started = parts.clock()
        self._elapsed_before = 0.0
        self._done_at_start = 0
        self._search_started: float | None = None  # when proposing began in this run (for the ETA)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, overrides: dict[str, Any] | None = None) -> str:
        """Run until a budget is spent; returns why it stopped. Ctrl-C records an "interrupted"
        event and re-raises; a SIGKILL records nothing and loses nothing (see the module doc)."""
        resumed = bool(self.store.candidates())
        self._elapsed_before = summarize(self.store, top=0).elapsed_s
        self._done_at_start = self._done()
        self._started = self.parts.clock()
        data = {"proposer": self.parts.proposer.name, "overrides": overrides or {}}
        self._event("resume" if resumed else "start", data)
        rng = random.Random(
            f"{self.config.seed}:{len(self.store.candidates())}:{len(self.store.events())}"
        )
        try:
            self._seed()
            for candidate in self.store.candidates():
                self._advance(candidate)
            self._verify_leaders()  # what a killed run left owed
            self._crown()  # an archive from before the tier-2 champion rule gets it here
            reason = self._search(rng)
        except KeyboardInterrupt:
            self._event("interrupted", {})
            raise
        self._phase = f"stopped: {reason}"
        self._event("stop", {"reason": reason})
        self._report()
        return reason

    def _search(self, rng: random.Random) -> str:
        self._search_started = self.parts.clock()
        with self._proposals(rng) as next_proposal:
            while (reason := self._stop_reason()) is None:
                self._migrate()
                self._phase = "proposing"
                self._report()
                island, outcome = next_proposal()
                if isinstance(outcome, ProposalFailed):
                    self._proposal_failed(outcome)
                else:
                    self._store(outcome, island)
                if self._fruitless >= MAX_FRUITLESS:
                    return f"{MAX_FRUITLESS} proposals in a row produced no new candidate"
        return reason

    def _stop_reason(self) -> str | None:
        budget = self.config.budget
        if self._done() >= budget.max_candidates:
            return f"budget reached: {budget.max_candidates} candidates"
        if budget.max_llm_cost_usd is not None:
            spent = self.store.counts().llm_cost_usd
            if spent >= budget.max_llm_cost_usd:
                return f"LLM cost budget reached: ${spent:.2f} of ${budget.max_llm_cost_usd:.2f}"
        if self._out_of_time():
            return f"wall-time budget reached: {budget.max_wall_minutes:g} minutes"
        return None

    def _out_of_time(self) -> bool:
        limit = self.config.budget.max_wall_minutes
        return limit is not None and self._elapsed_now() >= 60 * limit

    # -- seeds, proposals, migration -------------------------------------------------------------

    def _seed(self) -> None:
        """Store the bundled baselines of the kind, dealt over the islands. Idempotent: a run
        killed half-way through seeding completes it on resume with the same placement."""
        names = baseline_names(self.kind)
        sources = {name: baseline_source(self.kind, name) for name in names}
        seeds = [
            CandidateRecord.new(sources[n], self.kind, n, proposer=SEED_PROPOSER) for n in names
        ]
        plan = seed_islands([s.id for s in seeds], self.params.n_islands)
        for seed in seeds:
            self.store.add_candidate(dataclasses.replace(seed, island=plan.births[seed.id]))
        event = plan.event()
        if event is not None and not self.store.events(event.kind):
            self.store.add_event(event)

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
        turn = self._done()  # round-robin over islands, continued across resumes

        def submit() -> None:
            nonlocal turn
            island = turn % self.params.n_islands
            request = self._request(island, rng)
            proposer_rng = random.Random(rng.getrandbits(64))
            queue.append(
                (island, pool.submit(_propose, self.parts.proposer, request, proposer_rng))
            )
            turn += 1

        def next_proposal() -> tuple[int, Proposal | ProposalFailed]:
            # No more requests in flight than new candidates the budget still takes: a proposal
            # requested past the budget would be paid for and thrown away.
            room = self.config.budget.max_candidates - self._done()
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
                    for call in records.llm_call_records(future.result().llm_calls):
                        self.store.add_llm_call(call)

    def _request(self, island: int, rng: random.Random) -> ProposalRequest:
        candidates = self.store.candidates()
        evaluations = self.store.evaluations()
        members = build_members(candidates, evaluations, self.store.events())
        population = build_population(members, self.params)
        k = 2 if rng.random() < self.config.search.crossover_rate else 1
        parents = sample_parents(population.islands[island], rng, self.params, k)
        inspirations = sample_inspirations(population, island, parents, rng, self.params)
        by_id = {c.id: c for c in candidates}
        tier1 = {e.candidate_id: e for e in evaluations if e.tier == 1}

        def info(candidate_id: str) -> records.ParentInfo:
            return records.parent_info(by_id[candidate_id], tier1.get(candidate_id))

        history = prompt_history(members, self.config.llm.history_size)
        return ProposalRequest(
            self.kind,
            tuple(info(m.candidate_id) for m in parents),
            tuple(info(m.candidate_id) for m in inspirations),
            tuple(info(m.candidate_id) for m in history),
        )

    def _migrate(self) -> None:
        generation = self._generation()
        if migration_due(generation, self.params) and not migration_done(
            self.store.events(), generation
        ):
            members = build_members(
                self.store.candidates(), self.store.evaluations(), self.store.events()
            )
            moves = plan_migration(build_population(members, self.params), generation)
            self.store.add_event(migration_event(moves, generation))
            self.parts.on_log(
                f"generation {generation}: migrated {len(moves)} elites around the ring"
            )

    def _store(self, proposal: Proposal, island: int) -> None:
        record = records.candidate_record(proposal, self.kind, island, self._generation())
        calls = records.llm_call_records(proposal.llm_calls)
        if not self.store.add_candidate(record, calls):
            self._fruitless += 1
            self._event(
                "duplicate_source", {"candidate_id": record.id, "proposer": proposal.proposer}
            )
            return
        self._fruitless = 0
        self._advance(record)

    def _proposal_failed(self, failure: ProposalFailed) -> None:
        self._fruitless += 1
        for call in records.llm_call_records(failure.llm_calls):
            self.store.add_llm_call(call)
        self._event(
            "proposal_failed", {"proposer": self.parts.proposer.name, "error": str(failure)}
        )
        self.parts.on_log(f"proposal failed: {failure}")

    # -- evaluation: the cascade ----------------------------------------------------------------

    def _advance(self, candidate: CandidateRecord) -> None:
        """Take a stored candidate through whatever tiers it still owes, writing each as it lands."""
        done = self._evaluations(candidate.id)
        if 0 not in done:
            if not self._tier0(candidate):
                return
            done = self._evaluations(candidate.id)
        if not done[0].passed:
            return
        fresh = 1 not in done
        if fresh:
            done[1] = self._tier_tasks(candidate, 1, done[0])
        if not done[1].passed:
            return
        if not self._cascade_recorded(candidate):
            self._record_cascade(candidate)
        if fresh:  # the tier-1 ranking changed (a resume checks once, after its catch-up)
            self._verify_leaders()
        self._report()

    def _tier0(self, candidate: CandidateRecord) -> bool:
        """Tier 0, then the fingerprint dedupe. False when the candidate needs nothing more."""
        self._phase = f"tier 0: {candidate.id[:8]} {candidate.name}"
        self._report()
        evaluation = contract_rejection(candidate.source, self.kind, 0)
        if evaluation is None:
            evaluation = run_tier0(
                candidate.source, self.kind, self.parts.runner, self.config.evaluation
            )
        original = (
            self.store.by_fingerprint(evaluation.fingerprint, tier=0)
            if evaluation.status == "ok" and evaluation.fingerprint
            else None
        )
        self._save(candidate.id, evaluation)
        if evaluation.status != "ok":
            self.parts.on_log(
                f"tier 0 {candidate.id[:8]} {candidate.name}: {evaluation.status}: {evaluation.error}"
            )
        if original is None or original.candidate_id == candidate.id:
            return evaluation.status == "ok"
        for earlier in self._evaluations(original.candidate_id).values():
            if earlier.tier > 0:  # the same behaviour: its scores are this candidate's scores
                self.store.add_evaluation(
                    dataclasses.replace(
                        earlier,
                        candidate_id=candidate.id,
                        reused_from=original.candidate_id,
                        seconds=0.0,
                        created_at=self.parts.clock(),
                    )
                )
        self.parts.on_log(
            f"{candidate.id[:8]} {candidate.name} behaves like {original.candidate_id[:8]}: reused its evaluation"
        )
        return False

    def _tier_tasks(
        self, candidate: CandidateRecord, tier: int, tier0: EvaluationRecord
    ) -> EvaluationRecord:
        self._phase = f"tier {tier}: {candidate.id[:8]} {candidate.name}"
        self._report()
        screened = Evaluation(
            self.kind,
            0,
            "ok",
            fingerprint=tier0.fingerprint,
            batching=tier0.batching,
            batching_note=tier0.batching_note,
            state_tensors=_state_tensors(tier0),
        )
        evaluation = evaluate_tasks(
            candidate.source,
            self.kind,
            tier,
            screened,
            self.parts.runner,
            self.config.evaluation,
            self.parts.cache,
        )
        record = self._save(candidate.id, evaluation)
        score = f"{record.score:.3f}" if record.score is not None else record.status
        self.parts.on_log(
            f"tier {tier} {candidate.id[:8]} {candidate.name}: {score} ({record.seconds:.0f} s)"
        )
        return record

    def _tier2_owed(self) -> list[str]:
        """Candidate ids owed a tier-2 evaluation now: seeds that passed tier 1 (when
        `seeds_tier2`), then the current tier-1 leaders not yet verified, best first."""
        candidates = self.store.candidates()
        evaluations = self.store.evaluations(tier=1) + self.store.evaluations(tier=2)
        tiers: dict[str, dict[int, EvaluationRecord]] = {}
        for e in evaluations:
            tiers.setdefault(e.candidate_id, {})[e.tier] = e
        seeds = []
        if self.config.cascade.seeds_tier2:
            seeds = [
                c.id
                for c in candidates
                if c.proposer == SEED_PROPOSER
                and 1 in tiers.get(c.id, {})
                and tiers[c.id][1].passed
                and 2 not in tiers[c.id]
            ]
        new = {c.id for c in candidates if c.proposer != SEED_PROPOSER}
        return seeds + tier2_owed(evaluations, new, self.config.cascade)

    def _verify_leaders(self) -> None:
        """Run tier 2 for whatever is owed, one at a time: a leader that fails tier 2 leaves the
        top k and lets the next one in, so the list is recomputed after each."""
        while owed := self._tier2_owed():
            if self._out_of_time():
                return  # nothing is lost: a resume with more time computes the same list
            candidate = self.store.candidate(owed[0])
            assert candidate is not None, "owed ids come from the store"
            self._tier_tasks(candidate, 2, self._evaluations(candidate.id)[0])
            self._crown()

    def _cascade_recorded(self, candidate: CandidateRecord) -> bool:
        return any(e.data["candidate_id"] == candidate.id for e in self.store.events("cascade"))

    def _record_cascade(self, candidate: CandidateRecord) -> None:
        """A record, for people, of where the candidate stood on tier 1 when its result landed
        (`tier2`: in the top k then). Scheduling never reads it back: `_tier2_owed` decides."""
        if candidate.proposer == SEED_PROPOSER:
            due, rank = self.config.cascade.seeds_tier2, None
        else:
            new = {c.id for c in self.store.candidates() if c.proposer != SEED_PROPOSER}
            evaluations = self.store.evaluations(tier=1) + self.store.evaluations(tier=2)
            leaders = tier1_leaders(evaluations, new, self.config.cascade)
            rank = leaders.index(candidate.id) + 1 if candidate.id in leaders else None
            due = rank is not None
        self._event("cascade", {"candidate_id": candidate.id, "tier2": due, "tier1_rank": rank})

    def _crown(self) -> None:
        """Record a "champion" event when the best tier-2 score among the new candidates
        (agent/cascade.py `champion`) belongs to another candidate than the last one named."""
        new = {c.id for c in self.store.candidates() if c.proposer != SEED_PROPOSER}
        best = champion(self.store.evaluations(tier=2), new)
        named = self.store.events("champion")
        previous = named[-1].data["candidate_id"] if named else None
        if best is None or best.candidate_id == previous:
            return
        self._event(
            "champion",
            {
                "candidate_id": best.candidate_id,
                "previous": previous,
                "tier": 2,
                "score": best.score,
                "runner_up": best.runner_up,
                "ratio": best.ratio,
                "ci": list(best.ci) if best.ci else None,
                "significant": best.significant,
            },
        )
        record = self.store.candidate(best.candidate_id)
        name = record.name if record is not None else ""
        lead = ""
        if best.ratio is not None and best.ci is not None:
            beyond = "beyond seed noise" if best.significant else "within seed noise"
            lead = (
                f"; {best.ratio:.3f}x the runner-up {str(best.runner_up)[:8]} "
                f"(CI {best.ci[0]:.3f}-{best.ci[1]:.3f}, {beyond})"
            )
        self.parts.on_log(
            f"champion: {best.candidate_id[:8]} {name}, {best.score:.3f} x tuned AdamW on tier 2{lead}"
        )

    # -- records and reporting ------------------------------------------------------------------

    def _save(self, candidate_id: str, evaluation: Evaluation) -> EvaluationRecord:
        record = records.evaluation_record(
            candidate_id, evaluation, code_commit=self._commit, config_hash=self._config_hash,
            environment=self.parts.runner.environment,
        )
        self.store.add_evaluation(record)
        return record

    def _evaluations(self, candidate_id: str) -> dict[int, EvaluationRecord]:
        return {e.tier: e for e in self.store.evaluations(candidate_id=candidate_id)}

    def _event(self, kind: str, data: dict) -> None:
        self.store.add_event(EventRecord(kind, data, created_at=self.parts.clock()))

    def _done(self) -> int:
        return sum(c.proposer != SEED_PROPOSER for c in self.store.candidates())

    def _generation(self) -> int:
        return 1 + self._done() // self.params.n_islands

    def _elapsed_now(self) -> float:
        return self._elapsed_before + self.parts.clock() - self._started

    def _report(self) -> None:
        summary = summarize(self.store, top=1)
        new = summary.done - self._done_at_start
        run_time = self.parts.clock() - (self._search_started or self.parts.clock())
        left = self.config.budget.max_candidates - summary.done
        eta = max(left * run_time / new, 0.0) if new > 0 else None
        self.parts.on_progress(
            progress_of(
                summary,
                proposer=self.parts.proposer.name,
                phase=self._phase,
                budget=self.config.budget.max_candidates,
                generation=self._generation(),
                elapsed_s=self._elapsed_now(),
                eta_s=eta,
            )
        )


def _propose(
    proposer: Proposer, request: ProposalRequest, rng: random.Random
) -> Proposal | ProposalFailed:
    """One proposal, with a failure returned rather than raised so it crosses the thread pool as data."""
    try:
        return proposer.propose(request, rng)
    except ProposalFailed as failure:
        return failure


def _state_tensors(tier0: EvaluationRecord) -> int | None:
    value = tier0.descriptors.get("state_tensors")
    return int(value) if value is not None else None
