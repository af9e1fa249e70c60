"""The preference_loss kind, for proposers: terms on the log-ratio margin (logistic, hinge, squared,
exponential, a DiscoPOP-style gate, label smoothing, an SFT anchor, a beta factor), and weighted
sums of two losses.

{pc} {pr} {rc} {rr} {b}: the loss's own parameter names (policy chosen/rejected, reference
chosen/rejected log-probs, beta). Each result term first computes the margin
rho = (pc - pr) - (rc - rr) into a fresh local ({w}), as DPO, IPO, SLiC and LRML all do.
"""

from __future__ import annotations

from optforge.agent.proposers.crossover import blend_functions
from optforge.agent.proposers.grammar import Term
from optforge.agent.proposers.kinds.spec import ProposalKind
from optforge.agent.proposers.syntax import SCALAR, TENSOR

_MARGIN = "{w} = ({pc} - {pr}) - ({rc} - {rr})"
_LOCAL = (("w", "margin"),)
PREFERENCE_TERMS = (
    Term("logistic", "result", _MARGIN, "{e} + {c} * -torch.nn.functional.logsigmoid({b} * {w})",
         choices=(("c", (0.25, 0.5, 1.0)),), local=_LOCAL),  # DPO
    Term("hinge", "result", _MARGIN, "{e} + {c} * torch.relu(1 - {b} * {w})",
         choices=(("c", (0.25, 0.5, 1.0)),), local=_LOCAL),  # SLiC
    Term("squared", "result", _MARGIN, "{e} + {c} * ({w} - 1 / (2 * {b})) ** 2",
         choices=(("c", (0.01, 0.1)),), local=_LOCAL),  # IPO
    Term("exponential", "result", _MARGIN, "{e} + {c} * torch.exp(-{b} * {w})",
         choices=(("c", (0.1, 0.5)),), local=_LOCAL),
    Term(  # LRML: a sigmoid gate of the scaled margin hands the loss over to an exponential one
        "gate", "result", _MARGIN + "\n{v} = torch.sigmoid({b} * {w} / {c})",
        "(1 - {v}) * ({e}) + {v} * torch.exp(-{b} * {w})",
        choices=(("c", (0.05, 0.2, 1.0)),), local=(("w", "margin"), ("v", "gate")),
    ),
    Term(  # conservative DPO: the label is flipped with probability c
        "smoothing", "result", _MARGIN,
        "(1 - {c}) * ({e}) + {c} * -torch.nn.functional.logsigmoid(-{b} * {w})",
        choices=(("c", (0.05, 0.1, 0.2)),), local=_LOCAL,
    ),
    Term("sft_anchor", "result", combine="{e} - {c} * {pc}", choices=(("c", (0.001, 0.01)),)),  # RPO-style
    Term("beta_factor", "result", "{b} = {b} * {c}", "{e}", choices=(("c", (0.5, 2.0)),)),
    Term(  # bounded margin: the gradient vanishes once the policy is far from the reference
        "margin_clip", "result", "{w} = ({pc} - {pr}) - ({rc} - {rr})",
        "{e} + {c} * torch.relu({w} - {m}) ** 2 / 100",
        choices=(("c", (0.1, 1.0)), ("m", (5.0, 10.0, 20.0))), local=_LOCAL,
    ),
)

SPEC = ProposalKind(
    name="preference_loss",
    param_types={"loss": (TENSOR, TENSOR, TENSOR, TENSOR, SCALAR)},
    slots=("pc", "pr", "rc", "rr", "b"),
    terms=PREFERENCE_TERMS,
    crossovers=(blend_functions,),
    returns_state=False,
    blends=("sum",),
    examples=("dpo", "ipo", "lrml"),
)
