"""The schedule kind, for proposers: factors and floors on the multiplier, and products, means
and hand-overs of two schedules."""

from __future__ import annotations

from optforge.agent.proposers.crossover import blend_functions
from optforge.agent.proposers.grammar import Term
from optforge.agent.proposers.kinds.spec import ProposalKind
from optforge.agent.proposers.syntax import SCALAR

# Schedule terms: a factor multiplied onto the multiplier, or a floor under it.
_MUL = "{w} * ({e})"
SCHEDULE_TERMS = (
    Term(
        "warmup", "result", "{w} = min(1.0, ({s} + 1) / max(1, int({c} * {T})))", _MUL,
        choices=(("c", (0.02, 0.05, 0.1)),), local=(("w", "warm"),),
    ),
    Term(
        "cosine", "result",
        "{w} = 0.5 * (1 + math.cos(math.pi * min(1.0, {s} / max(1, {T}))))", _MUL, local=(("w", "cosine"),),
    ),
    Term("linear", "result", "{w} = max(0.0, 1 - {s} / max(1, {T}))", _MUL, local=(("w", "linear"),)),
    Term(
        "expdecay", "result", "{w} = {c} ** min(1.0, {s} / max(1, {T}))", _MUL,
        choices=(("c", (0.1, 0.01)),), local=(("w", "decay"),),
    ),
    Term(
        "invsqrt", "result", "{w} = 1 / math.sqrt(1 + {s} / max(1.0, {c} * {T}))", _MUL,
        choices=(("c", (0.01, 0.05)),), local=(("w", "inv_sqrt"),),
    ),
    Term(
        "cooldown", "result", "{w} = max(0.0, min(1.0, ({T} - {s}) / max(1, int({c} * {T}))))",
        _MUL, choices=(("c", (0.1, 0.2, 0.3)),), local=(("w", "cool"),),
    ),
    Term("floor", "result", combine="{c} + (1 - {c}) * ({e})", choices=(("c", (0.01, 0.1)),)),
)

SPEC = ProposalKind(
    name="schedule",
    param_types={"schedule": (SCALAR, SCALAR)},
    slots=("s", "T"),
    terms=SCHEDULE_TERMS,
    crossovers=(blend_functions,),
    returns_state=False,
    blends=("product", "mean", "handover"),
    examples=("cosine_warmup", "wsd"),
)
