"""The proposer protocol and the records that flow into and out of it.

A proposer turns a ProposalRequest (the kind, the parents chosen by selection, inspirations, and an
OPRO-style history of earlier candidates) into a Proposal (new source code plus provenance). It
never touches the archive: the campaign loop stores what it returns (DESIGN.md, principle 2).
Held-out (tier-2) metrics never appear in a request: selection fills `score` from the screen.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from optforge.archive import LLMCallRecord


@dataclass(frozen=True)
class TaskFeedback:
    """Directional feedback on one tier-1 task for a prompt: where a candidate won or lost."""

    task: str
    status: str  # "ok", "diverged", "error", ...
    score: float | None  # tier-1 score: loss ratio vs tuned AdamW (1.0 = as good, above is better)
    error: str | None = None  # first error line, e.g. "training loss became non-finite at step 40"
    curve: tuple[float, ...] = ()  # mean held-out metric at the checkpoints (tier 1 only)
    reference_curve: tuple[float, ...] = ()  # tuned AdamW's, same checkpoints
    # The preference task's (beta, KL, reward) per beta, and the reference's (DPO's)
    frontier: tuple[tuple[float, float, float], ...] = ()
    reference_frontier: tuple[tuple[float, float, float], ...] = ()
    # The scaling task's, per width: the candidate's held-out loss and the tuned optimum's (nats),
    # and the (group, lr, weight decay) the rule gave at that width
    final: float | None = None
    reference_final: float | None = None
    hyperparameters: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True)
class ParentInfo:
    """A candidate shown to a proposer: code, tier-1 score and per-task feedback."""

    id: str
    name: str
    source: str
    score: float | None
    status: str
    feedback: tuple[TaskFeedback, ...] = ()


@dataclass(frozen=True)
class ProposalRequest:
    kind: str  # one of tasks.contracts.KINDS
    parents: tuple[ParentInfo, ...]  # 1 (mutation/rewrite) or 2 (crossover)
    inspirations: tuple[ParentInfo, ...] = ()  # elites from other cells and islands
    history: tuple[ParentInfo, ...] = ()  # earlier candidates, best first (OPRO), no feedback needed


@dataclass(frozen=True)
class Proposal:
    source: str
    name: str  # short human name, e.g. "lion_tanh_momentum"
    proposer: str  # "mutate", "llm:<model>", ...
    parent_ids: tuple[str, ...]
    thought: str | None = None  # the model's stated idea (LLM) or the mutation applied (mutate)
    prompt: str | None = None
    reply: str | None = None
    llm_calls: tuple[LLMCallRecord, ...] = field(default_factory=tuple)


class ProposalFailed(Exception):
    """No usable candidate this time (the LLM call failed, the reply broke the contract twice, ...).

    Carries the LLM calls made so the loop can record their cost and errors."""

    def __init__(self, message: str, llm_calls: tuple[LLMCallRecord, ...] = ()):
        super().__init__(message)
        self.llm_calls = llm_calls


class Proposer(Protocol):
    name: str

    def propose(self, request: ProposalRequest, rng: random.Random) -> Proposal: ...
