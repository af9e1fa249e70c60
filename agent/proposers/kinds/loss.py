"""The loss kind, for proposers: regularisers added to the loss, and weighted sums of two losses."""

from __future__ import annotations

from optforge.agent.proposers.crossover import blend_functions
from optforge.agent.proposers.grammar import Term
from optforge.agent.proposers.kinds.spec import ProposalKind
from optforge.agent.proposers.syntax import INDEX, TENSOR

# Loss terms: regularisers on log-probabilities, probabilities and margins, added to the loss.
_ADD = "{e} + {c} * {w}"
LOSS_TERMS = (
    Term(  # confidence penalty, Pereyra et al. 2017
        "entropy", "result",
        "{v} = torch.log_softmax({z}, dim=-1)\n{w} = ({v}.exp() * {v}).sum(dim=-1).mean()",
        _ADD, choices=(("c", (0.05, 0.1, 0.3)),), local=(("v", "log_probs"), ("w", "neg_entropy")),
    ),
    Term(  # z-loss, PaLM (Chowdhery et al. 2022)
        "zloss", "result", "{w} = torch.logsumexp({z}, dim=-1).square().mean()", _ADD,
        choices=(("c", (1e-4, 1e-3)),), local=(("w", "z_loss"),),
    ),
    Term(
        "logitnorm", "result", "{w} = {z}.square().mean()", _ADD,
        choices=(("c", (1e-3, 1e-2)),), local=(("w", "logit_sq"),),
    ),
    Term(  # multi-class hinge on the margin between the target logit and the best other logit
        "margin", "result",
        "{v} = {z}.gather(-1, {t}.unsqueeze(-1)).squeeze(-1)\n"
        "{u} = {z}.scatter(-1, {t}.unsqueeze(-1), -10000.0).amax(dim=-1)\n"
        "{w} = torch.relu({m} - ({v} - {u})).mean()",
        _ADD, choices=(("c", (0.1, 0.5, 1.0)), ("m", (0.5, 1.0))),
        local=(("v", "target_logit"), ("u", "other_logit"), ("w", "hinge")),
    ),
    Term(
        "smooth", "result", "{w} = -torch.log_softmax({z}, dim=-1).mean()", _ADD,
        choices=(("c", (0.05, 0.1)),), local=(("w", "uniform_nll"),),
    ),
    Term(  # Poly-1, Leng et al. 2022: epsilon * (1 - p_t)
        "poly1", "result",
        "{w} = (1 - torch.softmax({z}, dim=-1).gather(-1, {t}.unsqueeze(-1))).mean()", _ADD,
        choices=(("c", (0.5, 1.0, 2.0)),), local=(("w", "poly1"),),
    ),
    Term("temperature", "result", "{z} = {z} / {c}", "{e}", choices=(("c", (0.5, 2.0)),)),
)

SPEC = ProposalKind(
    name="loss",
    param_types={"loss": (TENSOR, INDEX)},
    slots=("z", "t"),
    terms=LOSS_TERMS,
    crossovers=(blend_functions,),
    returns_state=False,
    blends=("sum",),
    examples=("cross_entropy", "label_smoothing", "focal"),
)
