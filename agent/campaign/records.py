"""Conversions between the agent's objects and the archive's records (the archive imports nothing
from the agent): evaluations and proposals become records; stored records become what a proposer
may see. Held-out (tier-2) results never flow into a ParentInfo (DESIGN.md, principle 9)."""

from __future__ import annotations

import time
from dataclasses import replace

from optforge.agent.config import EvaluationConfig
from optforge.agent.proposers.base import ParentInfo, Proposal, TaskFeedback
from optforge.archive import (
    CandidateRecord,
    EvaluationRecord,
    TaskResult,
    config_hash,
)


def evaluation_record(
    candidate_id: str, evaluation: EvaluationRecord, *, code_commit: str | None, config_hash: str,
    environment: dict[str, str] | None = None,
) -> EvaluationRecord:
    """The evaluation as the campaign stores it: with the code, config and sandbox it ran with."""
    return replace(
        evaluation, candidate_id=candidate_id, code_commit=code_commit, config_hash=config_hash,
        environment=dict(environment or {}), created_at=time.time(),
    )


def evaluation_config_hash(config: EvaluationConfig) -> str:
    """Hash of what changes scores (seeds, sweep), not of where or how they ran (the sandbox
    settings, the executor, the batching cap: every batching mode gives the same results). The
    device is where too: each evaluation's environment records the one its jobs trained on."""
    where = {"sandbox", "executor", "device", "max_batching"}
    return config_hash(config.model_dump(mode="json", exclude=where))


def candidate_record(
    proposal: Proposal, kind: str, island: int, generation: int
) -> CandidateRecord:
    return CandidateRecord.new(
        proposal.source,
        kind,
        proposal.name,
        parent_ids=proposal.parent_ids,
        island=island,
        generation=generation,
        proposer=proposal.proposer,
        thought=proposal.thought,
        prompt=proposal.prompt,
        reply=proposal.reply,
    )


def parent_info(candidate: CandidateRecord, tier1: EvaluationRecord | None) -> ParentInfo:
    """What a proposer may see of a candidate: its code, tier-1 score and tier-1 feedback only."""
    if tier1 is not None and tier1.tier != 1:
        raise ValueError("a prompt may only show tier-1 results: held-out ones never enter prompts")
    if tier1 is None:
        return ParentInfo(candidate.id, candidate.name, candidate.source, None, "pending")
    feedback = tuple(_feedback(task) for task in tier1.tasks)
    score = tier1.score if tier1.passed else None
    return ParentInfo(candidate.id, candidate.name, candidate.source, score, tier1.status, feedback)


def _feedback(task: TaskResult) -> TaskFeedback:
    return TaskFeedback(
        task=task.name, status=task.status, score=task.score, error=task.error,
        curve=task.curve, reference_curve=task.reference_curve,
        frontier=task.frontier, reference_frontier=task.reference_frontier,
        final=task.final, reference_final=task.reference_final, hyperparameters=task.hyperparameters,
    )
