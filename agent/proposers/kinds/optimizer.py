"""The optimizer kind, for proposers: the Lion search's building blocks as grammar terms, grafts
and blends of two update rules, and pruning of state and hyperparameters the update never reads."""

from __future__ import annotations

from optforge.agent.proposers.crossover import blend_updates, graft
from optforge.agent.proposers.grammar import Term
from optforge.agent.proposers.kinds.spec import ProposalKind
from optforge.agent.proposers.mutate import prune_optimizer
from optforge.agent.proposers.syntax import HPS, SCALAR, STATE, TENSOR

_EMA = "{v} = {hp}[{h}] * {state}[{k}] + (1 - {hp}[{h}]) * {x}"
_LR = '{hp}["lr"]'

# Optimizer terms: the building blocks of the Lion program search (Chen et al. 2023, section 2.1:
# sign, clip, norm, interpolation, EMA state) plus the usual weight-decay forms.
OPTIMIZER_TERMS = (
    Term("sign", "tensor", "{x} = torch.sign({x})"),
    Term("softsign", "tensor", "{x} = {x} / (1 + {x}.abs())"),
    Term("clip", "tensor", "{x} = {x}.clamp(-{c}, {c})", choices=(("c", (0.1, 1.0, 10.0)),)),
    Term(
        "normclip", "tensor", "{x} = {x} / torch.clamp({x}.norm() / {c}, min=1.0)",
        choices=(("c", (0.1, 1.0)),),
    ),
    Term("absnorm", "tensor", "{x} = {x} / ({x}.abs().mean() + 1e-08)"),
    Term("rmsnorm", "tensor", "{x} = {x} / ({x}.square().mean().sqrt() + 1e-08)"),
    Term("center", "tensor", "{x} = {x} - {x}.mean()"),
    Term(
        "ema", "tensor", _EMA + "\n{x} = {v}",
        hparams=(("h", "beta_ema", (0.9, 0.95, 0.99)),), state=(("k", "ema", "v"),), local=(("v", "ema"),),
    ),
    Term(
        "rms", "tensor",
        "{v} = {hp}[{h}] * {state}[{k}] + (1 - {hp}[{h}]) * {x} * {x}\n"
        "{x} = {x} / (({v} / (1 - {hp}[{h}] ** {step})).sqrt() + 1e-08)",
        hparams=(("h", "beta_sq", (0.99, 0.999)),), state=(("k", "sq_ema", "v"),), local=(("v", "sq_ema"),),
    ),
    Term(  # Lion's structure: step along an interpolation, track the momentum with a slower beta
        "interp", "tensor",
        _EMA + "\n{x} = {hp}[{h2}] * {state}[{k}] + (1 - {hp}[{h2}]) * {x}",
        hparams=(("h", "beta_slow", (0.99,)), ("h2", "beta_fast", (0.9,))),
        state=(("k", "ema", "v"),), local=(("v", "ema"),),
    ),
    Term("l2", "tensor", "{x} = {x} + {hp}[{h}] * {param}", hparams=(("h", "l2", (1e-4, 1e-3)),)),
    Term(
        "mix", "tensor", "{x} = {hp}[{h}] * {x} + (1 - {hp}[{h}]) * {y}",
        hparams=(("h", "mix", (0.25, 0.5, 0.75)),), needs_other=True,
    ),
    Term(  # Adafactor's relative step: scale by the parameter's RMS (floored so zeros still move)
        "relstep", "tensor", "{x} = {x} * torch.clamp({param}.square().mean().sqrt(), min=0.001)"
    ),
    Term(
        "decay", "result", combine="{e} - " + _LR + " * {hp}[{h}] * {param}",
        hparams=(("h", "decoupled_wd", (1e-3, 1e-2, 0.1)),),
    ),
    Term(
        "capstep", "result",
        combine="torch.clamp({e}, -{c} * " + _LR + ", {c} * " + _LR + ")", choices=(("c", (1.0, 10.0)),),
    ),
)

SPEC = ProposalKind(
    name="optimizer",
    param_types={"init": (TENSOR,), "update": (TENSOR, TENSOR, STATE, SCALAR, HPS)},
    slots=("g", "param", "state", "step", "hp"),
    terms=OPTIMIZER_TERMS,
    crossovers=(graft, blend_updates),
    returns_state=True,
    prune=prune_optimizer,
    # The reference and one contrasting idea (two or three keep the system prompt near 2k tokens).
    examples=("adamw", "lion"),
)
