"""The mix proposer: draws members by weight, falls back on failure, keeps every LLM call."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from optforge.agent.proposers.base import Proposal, ProposalFailed, ProposalRequest
from optforge.agent.proposers.mix import MixProposer
from optforge.archive import LLMCallRecord

REQUEST = ProposalRequest(kind="optimizer", parents=())


class Fake:
    """A proposer that answers with its own name, or fails (optionally after an LLM call)."""

    def __init__(self, name: str, fail: bool = False, calls: int = 0) -> None:
        self.name, self.fail, self.calls, self.asked = name, fail, calls, 0

    def propose(self, request: ProposalRequest, rng: random.Random) -> Proposal:
        self.asked += 1
        spent = tuple(LLMCallRecord(None, self.name, 10, 5, 0.01, 0.1, error=None) for _ in range(self.calls))
        if self.fail:
            raise ProposalFailed(f"{self.name} is down", llm_calls=spent)
        return Proposal(source="", name=self.name, proposer=self.name, parent_ids=(), llm_calls=spent)


def test_members_are_drawn_in_proportion_to_their_weights() -> None:
    mix, rng = MixProposer([(Fake("a"), 1.0), (Fake("b"), 3.0), (Fake("off"), 0.0)]), random.Random(0)
    counts = Counter(mix.propose(REQUEST, rng).proposer for _ in range(4000))
    assert set(counts) == {"a", "b"}
    assert abs(counts["b"] / 4000 - 0.75) < 0.03


def test_the_chosen_members_proposal_is_returned_unchanged() -> None:
    inner = Fake("mutate")
    proposal = MixProposer([(inner, 1.0)]).propose(REQUEST, random.Random(0))
    assert proposal == Fake("mutate").propose(REQUEST, random.Random(0))
    assert proposal.proposer == "mutate"


def test_draws_are_reproducible_for_a_seed() -> None:
    mix = MixProposer([(Fake("a"), 1.0), (Fake("b"), 1.0), (Fake("c"), 2.0)])
    draw = [[mix.propose(REQUEST, rng).proposer for _ in range(50)] for rng in (random.Random(7), random.Random(7))]
    assert draw[0] == draw[1]


def test_a_failing_member_falls_back_to_the_others_heaviest_first() -> None:
    down, light, heavy = Fake("llm", fail=True, calls=2), Fake("light"), Fake("heavy")
    mix = MixProposer([(down, 100.0), (light, 1.0), (heavy, 2.0)])
    results = Counter(mix.propose(REQUEST, random.Random(s)).proposer for s in range(30))
    drawn_down = down.asked
    assert drawn_down > 20  # the heavy failing member is drawn most times ...
    assert results["heavy"] >= drawn_down  # ... and "heavy" is the fallback each time
    proposal = mix.propose(REQUEST, random.Random(0))
    assert proposal.proposer == "heavy"
    assert [c.model for c in proposal.llm_calls] == ["llm", "llm"]  # the failed calls' cost is kept


def test_when_every_member_fails_the_error_names_each_and_carries_the_calls() -> None:
    mix = MixProposer([(Fake("a", fail=True, calls=1), 1.0), (Fake("b", fail=True, calls=2), 1.0)])
    with pytest.raises(ProposalFailed, match="a is down.*b is down|b is down.*a is down") as info:
        mix.propose(REQUEST, random.Random(0))
    assert len(info.value.llm_calls) == 3


@pytest.mark.parametrize("members", [[], [(Fake("a"), 0.0)], [(Fake("a"), -1.0)], [(Fake("a"), float("nan"))]])
def test_needs_a_positive_weight_and_no_negative_ones(members: list) -> None:
    with pytest.raises(ValueError):
        MixProposer(members)
