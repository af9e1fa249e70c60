"""A weighted portfolio of proposers (e.g. 80% LLM, 20% mutation), recorded per candidate.

Each proposal comes from one member drawn by weight with the campaign's rng; its Proposal is
returned as the member made it, so `Proposal.proposer` says which member produced the candidate.
"""

from __future__ import annotations

import dataclasses
import random

from optforge.archive import LLMCallRecord

from .base import Proposal, ProposalFailed, ProposalRequest, Proposer


class MixProposer:
    """Draw a member by weight; if it raises ProposalFailed, try the others, heaviest first.

    Members with weight 0 are switched off: never drawn, never a fallback. LLM calls made by
    members that failed before one succeeded are prepended to the successful Proposal's
    `llm_calls` (or carried by the final ProposalFailed), so their cost is never lost.
    """

    def __init__(self, proposers: list[tuple[Proposer, float]], name: str = "mix") -> None:
        for proposer, weight in proposers:
            if not weight >= 0:  # also rejects NaN
                raise ValueError(f"weight of proposer {proposer.name!r} must be >= 0, got {weight}")
        self.members = [(p, float(w)) for p, w in proposers if w > 0]
        if not self.members:
            raise ValueError("MixProposer needs at least one proposer with a positive weight")
        self.name = name

    def propose(self, request: ProposalRequest, rng: random.Random) -> Proposal:
        weights = [w for _, w in self.members]
        first = rng.choices(range(len(self.members)), weights=weights)[0]
        # Fallbacks by weight, heaviest first; ties keep the order the members were given in.
        rest = sorted((i for i in range(len(self.members)) if i != first), key=lambda i: -weights[i])
        failures: list[str] = []
        spent: tuple[LLMCallRecord, ...] = ()
        for i in [first, *rest]:
            proposer = self.members[i][0]
            try:
                proposal = proposer.propose(request, rng)
            except ProposalFailed as exc:
                failures.append(f"{proposer.name}: {exc}")
                spent += exc.llm_calls
                continue
            if spent:
                proposal = dataclasses.replace(proposal, llm_calls=spent + proposal.llm_calls)
            return proposal
        raise ProposalFailed("every proposer failed: " + "; ".join(failures), llm_calls=spent)


__all__ = ["MixProposer"]
