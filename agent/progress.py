"""What a running campaign reports to its display: one immutable snapshot per change.

The campaign loop (agent/campaign.py) builds these from the archive's counts and its own clock; the
display (agent/campaign_display.py) only renders them, so the two never share mutable state.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Best:
    """The campaign's best new candidate, verified first: the champion (the best tier-2 score) once
    one is verified on tier 2, else the tier-1 leader (`tier` says which)."""

    id: str
    name: str
    score: float  # the archive's ranking score (tier 2 where it exists, else tier 1)
    score_ci: tuple[float, float] | None
    tier: int  # the tier that score comes from


@dataclass(frozen=True)
class Progress:
    archive: pathlib.Path
    kind: str
    proposer: str  # e.g. "mutate", "llm:gpt-4o-mini", "mix"
    done: int  # new candidates stored (seeds excluded): counts against the budget
    budget: int  # max_candidates
    phase: str  # one line: "seeding", "proposing", "tier 1: 3fa9c2e1 adam_tanh", "stopped: ..."
    generation: int = 0
    seeds: int = 0  # seed candidates (the bundled baselines of the kind)
    best: Best | None = None
    # Each candidate's outcome at the deepest tier it reached: {"ok": 40, "failed_tier0": 12, ...}.
    statuses: dict[str, int] = field(default_factory=dict)
    deduplicated: int = 0  # candidates that reused another's evaluation (same tier-0 fingerprint)
    duplicate_sources: int = 0  # proposals whose normalized source was already archived
    proposal_failures: int = 0  # proposals that produced no candidate (LLM errors, broken replies)
    llm_calls: int = 0
    llm_errors: int = 0
    llm_cost_usd: float = 0.0
    elapsed_s: float = 0.0  # over all runs of this campaign, resumes included
    eta_s: float | None = None  # None until there is a rate to extrapolate from
