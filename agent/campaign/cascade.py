"""The cascade, run: tier 0 (and the behaviour dedupe), tier 1, tier 2 for the leaders, the champion.

Which candidates are owed tier 2 and who is champion are the pure rules of agent/campaign/rules.py; this
runs the evaluations they call for and writes each result as it lands, so a killed run leaves
exactly what is still to do (agent/campaign/loop.py, "Crash safety").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from optforge.agent.campaign import records as records
from optforge.agent.campaign.parts import CampaignParts
from optforge.agent.campaign.rules import champion, tier1_leaders, tier2_owed
from optforge.agent.campaign.state import CampaignArchive
from optforge.agent.campaign.summary import SEED_PROPOSER
from optforge.agent.config import CampaignConfig
from optforge.agent.evaluation.evaluate import contract_rejection, evaluate_tasks, run_tier0
from optforge.agent.evaluation.runtime import code_commit
from optforge.archive import CandidateRecord, EvaluationRecord, EventRecord
from optforge.tasks.kinds import reference_label


class Cascade:
    def __init__(self, archive: CampaignArchive, config: CampaignConfig, parts: CampaignParts,
                 phase: Callable[[str], None]):
        """`phase` tells the loop's display what the cascade is doing; results go to the log."""
        self.archive, self.config, self.parts, self.phase = archive, config, parts, phase
        self.kind = config.kind
        self._config_hash = records.evaluation_config_hash(config.evaluation)
        self._commit = code_commit()

    def screen(self, candidate: CandidateRecord) -> bool:
        """Take a stored candidate through the tiers it still owes up to tier 1 (tier 0 with the
        dedupe by behaviour, then tier 1); True when a tier-1 result landed now, which may have
        changed the leaders that tier 2 verifies."""
        done = self.archive.tiers(candidate.id)
        if 0 not in done:
            if not self._tier0(candidate):
                return False
            done = self.archive.tiers(candidate.id)
        if not done[0].passed:
            return False
        fresh = 1 not in done
        if fresh:
            done[1] = self._tier_tasks(candidate, 1, done[0])
        if not done[1].passed:
            return False
        if not self._cascade_recorded(candidate):
            self._record_cascade(candidate)
        return fresh

    def verify_leaders(self, out_of_time: Callable[[], bool]) -> None:
        """Tier 2 for whatever is owed, one at a time, the champion re-decided after each: a leader
        that fails tier 2 leaves the top k and lets the next one in, so the list is recomputed."""
        while owed := self._tier2_owed():
            if out_of_time():
                return  # nothing is lost: a resume with more time computes the same list
            candidate = self.archive.candidate(owed[0])
            self._tier_tasks(candidate, 2, self.archive.tiers(candidate.id)[0])
            self.crown()

    def crown(self) -> None:
        """Record a "champion" event when the best tier-2 score among the new candidates
        (agent/campaign/rules.py `champion`) belongs to another candidate than the last one named."""
        best = champion(self.archive.of_tiers(2), self.archive.new_ids())
        named = self.archive.events_of("champion")
        previous = named[-1].data["candidate_id"] if named else None
        if best is None or best.candidate_id == previous:
            return
        self._event("champion", {
            "candidate_id": best.candidate_id, "previous": previous, "tier": 2, "score": best.score,
            "runner_up": best.runner_up, "ratio": best.ratio,
            "ci": list(best.ci) if best.ci else None, "significant": best.significant,
        })
        name = self.archive.candidate(best.candidate_id).name
        lead = ""
        if best.ratio is not None and best.ci is not None:
            beyond = "beyond seed noise" if best.significant else "within seed noise"
            lead = (f"; {best.ratio:.3f}x the runner-up {str(best.runner_up)[:8]} "
                    f"(CI {best.ci[0]:.3f}-{best.ci[1]:.3f}, {beyond})")
        self.parts.on_log(
            f"champion: {best.candidate_id[:8]} {name}, {best.score:.3f} x {reference_label(self.kind)} on tier 2{lead}"
        )

    # -- the tiers ------------------------------------------------------------------------------

    def _tier0(self, candidate: CandidateRecord) -> bool:
        """Tier 0, then the fingerprint dedupe. False when the candidate needs nothing more."""
        self.phase(f"tier 0: {candidate.id[:8]} {candidate.name}")
        evaluation = contract_rejection(candidate.source, self.kind, 0)
        if evaluation is None:
            evaluation = run_tier0(candidate.source, self.kind, self.parts.runner, self.config.evaluation)
        original = (
            self.archive.original_behaving_like(evaluation.fingerprint)
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
        for earlier in self.archive.tiers(original.candidate_id).values():
            if earlier.tier > 0:  # the same behaviour: its scores are this candidate's scores
                self.archive.add_evaluation(dataclasses.replace(
                    earlier, candidate_id=candidate.id, reused_from=original.candidate_id,
                    seconds=0.0, created_at=self.parts.clock(),
                ))
        self.parts.on_log(
            f"{candidate.id[:8]} {candidate.name} behaves like {original.candidate_id[:8]}: "
            "reused its evaluation"
        )
        return False

    def _tier_tasks(self, candidate: CandidateRecord, tier: int, tier0: EvaluationRecord) -> EvaluationRecord:
        self.phase(f"tier {tier}: {candidate.id[:8]} {candidate.name}")
        evaluation = evaluate_tasks(candidate.source, self.kind, tier, tier0, self.parts.runner,
                                    self.config.evaluation, self.parts.cache)
        record = self._save(candidate.id, evaluation)
        score = f"{record.score:.3f}" if record.score is not None else record.status
        self.parts.on_log(f"tier {tier} {candidate.id[:8]} {candidate.name}: {score} ({record.seconds:.0f} s)")
        return record

    # -- tier 2: who is owed it -----------------------------------------------------------------

    def _tier2_owed(self) -> list[str]:
        """Candidate ids owed a tier-2 evaluation now: seeds that passed tier 1 (when
        `seeds_tier2`), then the current tier-1 leaders not yet verified, best first."""
        seeds = []
        if self.config.cascade.seeds_tier2:
            for c in self.archive.candidates:
                tiers = self.archive.tiers(c.id)
                if c.proposer == SEED_PROPOSER and 1 in tiers and tiers[1].passed and 2 not in tiers:
                    seeds.append(c.id)
        return seeds + tier2_owed(self.archive.of_tiers(1, 2), self.archive.new_ids(), self.config.cascade, self.config.kind)

    def _cascade_recorded(self, candidate: CandidateRecord) -> bool:
        return any(e.data["candidate_id"] == candidate.id for e in self.archive.events_of("cascade"))

    def _record_cascade(self, candidate: CandidateRecord) -> None:
        """A record, for people, of where the candidate stood on tier 1 when its result landed
        (`tier2`: in the top k then). Scheduling never reads it back: `_tier2_owed` decides."""
        if candidate.proposer == SEED_PROPOSER:
            due, rank = self.config.cascade.seeds_tier2, None
        else:
            leaders = tier1_leaders(self.archive.of_tiers(1, 2), self.archive.new_ids(), self.config.cascade,
                                    self.config.kind)
            rank = leaders.index(candidate.id) + 1 if candidate.id in leaders else None
            due = rank is not None
        self._event("cascade", {"candidate_id": candidate.id, "tier2": due, "tier1_rank": rank})

    # -- records --------------------------------------------------------------------------------

    def _save(self, candidate_id: str, evaluation: EvaluationRecord) -> EvaluationRecord:
        record = records.evaluation_record(
            candidate_id, evaluation, code_commit=self._commit, config_hash=self._config_hash,
            environment=self.parts.runner.environment,
        )
        self.archive.add_evaluation(record)
        return record

    def _event(self, kind: str, data: dict) -> None:
        self.archive.add_event(EventRecord(kind, data, created_at=self.parts.clock()))
