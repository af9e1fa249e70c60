"""The scaling_rule kind, for proposers: factors on one group's learning rate or weight decay that
are powers, logarithms or saturating functions of the width ratio (muP's 1/width, the sqrt and
linear weight-decay readings), constant factors, a group's own branch, a learning-rate floor and a
cap on lr x weight decay that keeps AdamW's guard; crossovers take one group's rule, or the
learning-rate or weight-decay rule, from the other parent, or a weighted geometric mean of the two.

`scale(width, base_width, group, base)` returns {"lr": ..., "weight_decay": ...}: the terms rewrite
one entry of every returned dict (grammar.Term.entry), multiplying it by a factor bound at the start
of the function, so a term composes with whatever branches the rule already has:

    lr_factor = (width / base_width) ** (-0.5) if group in ('embedding',) else 1.0
    ...
    return {"lr": base["lr"] / ratio * lr_factor, "weight_decay": base["weight_decay"]}

{W} {B} {grp} {base}: the rule's own parameter names; {G} a tuple of groups; {e} the entry's value,
{e_lr} the learning rate the same return statement gives.
"""

from __future__ import annotations

import ast
import random
import re

from optforge.agent.proposers import syntax
from optforge.agent.proposers.crossover import _merge_module, blend_functions
from optforge.agent.proposers.grammar import Term, rewrite_entry
from optforge.agent.proposers.kinds.spec import ProposalKind
from optforge.agent.proposers.operators import Mutation
from optforge.agent.proposers.syntax import HPS, LABEL, SCALAR

# The groups a factor applies to: one group, or the hidden matrices and readout together (muP's pair).
GROUP_SETS: tuple[tuple[str, ...], ...] = (("hidden",), ("output",), ("hidden", "output"), ("embedding",), ("vector",))
# Exponents of width / base_width, as code: muP's -1, the square-root and cube-root laws.
LR_POWERS = ("-1", "-0.5", "-1 / 3", "1 / 3", "0.5")
WD_POWERS = ("-0.5", "-1 / 3", "1 / 3", "0.5", "1")

_IN = " if {grp} in {G} else 1.0"
_ON = "({e}) * {w}"
_LR, _WD = (("w", "lr_factor"),), (("w", "wd_factor"),)
_RATIO_AT_LEAST_1 = "max({W} / {B}, 1.0)"  # log terms act above the base width only: 0 at and below it


def _factor(tag: str, entry: str, text: str, choices: tuple[tuple[str, tuple], ...]) -> Term:
    """A factor on `entry` for the groups in {G}, 1.0 for the others, bound before any return."""
    return Term(tag, "result", "{w} = " + text + _IN, _ON, choices=(*choices, ("G", GROUP_SETS)),
                local=_LR if entry == "lr" else _WD, entry=entry)


SCALING_TERMS = (
    # Power laws of the width ratio: muP (Yang et al. 2022) puts -1 on Adam's hidden and readout
    # learning rates; robust layerwise scaling (arXiv 2510.15262) puts 0.5 or 1 on weight decay.
    _factor("lr_power", "lr", "({W} / {B}) ** ({p})", (("p", LR_POWERS),)),
    _factor("wd_power", "weight_decay", "({W} / {B}) ** ({p})", (("p", WD_POWERS),)),
    _factor("lr_scale", "lr", "{c}", (("c", (0.5, 0.7, 1.4, 2.0)),)),
    _factor("wd_scale", "weight_decay", "{c}", (("c", (0.0, 0.25, 0.5, 2.0)),)),
    # 1 at the base width, 1 / ratio when wide: a constant part of the learning rate that wide
    # models no longer scale away (lr ~ 1 / (width + width_0)).
    _factor("lr_offset", "lr", "(1 + {c}) / (1 + {c} * {W} / {B})", (("c", (0.5, 1.0, 2.0)),)),
    _factor("lr_log", "lr", "1 / (1 + {c} * math.log(" + _RATIO_AT_LEAST_1 + "))", (("c", (0.25, 0.5, 1.0)),)),
    _factor("wd_log", "weight_decay", "1 + {c} * math.log(" + _RATIO_AT_LEAST_1 + ")", (("c", (0.25, 0.5, 1.0)),)),
    # Weight decay that keeps the timescale 1 / (lr x wd) (Wang & Aitchison 2024) at q = 1, or half
    # of its change at q = 0.5, whatever the learning rate does.
    Term("wd_timescale", "result", combine="({e}) * (({base}['lr'] / ({e_lr})) ** {q}" + _IN + ")",
         choices=(("q", ("1", "0.5")), ("G", GROUP_SETS)), entry="weight_decay"),
    # A group's own rule, ahead of the rest of the function.
    Term("branch", "result",
         "if {grp} in {G}:\n    return {{'lr': {base}['lr'] * ({W} / {B}) ** ({p}), 'weight_decay': {base}['weight_decay']}}",
         choices=(("p", ("-1", "-0.5", "-1 / 3")), ("G", GROUP_SETS))),
    # A floor under the learning rate, as a fraction of the base one (it acts on the screened widths
    # for a rule that falls as 1/width there: 1/2 at 64, 1/8 at 256).
    Term("lr_floor", "result", combine="max({e}, {c} * {base}['lr'])", choices=(("c", (0.15, 0.3, 0.5)),),
         entry="lr"),
    # A cap on lr x weight decay, as a multiple of its base value: it keeps AdamW's guard (lr x wd
    # <= 0.05) at every width, and the timescale 1 / (lr x wd) from shrinking below the base one.
    Term("wd_cap", "result", combine="min({e}, {c} * {base}['lr'] * {base}['weight_decay'] / ({e_lr}))",
         choices=(("c", (1.0, 2.0)),), entry="weight_decay"),
)


# ------------------------------------------------------------------------------------- crossover


def _adopt_rule(a: ast.Module, b: ast.Module, kind: str, b_name: str) -> tuple[ast.FunctionDef, str] | None:
    """Bring `b`'s rule into `a` as a helper named after b; (a's main function, the helper's name)."""
    main = SPEC.main_function
    ours = syntax.functions(a).get(main)
    if ours is None or main not in syntax.functions(b) or ast.unparse(a) == ast.unparse(b):
        return None  # the same rule twice: nothing to take from it
    base = re.sub(r"[^A-Za-z0-9_]+", "_", b_name).strip("_")[:32] or "other"
    helper = syntax.fresh(f"_{base}", syntax.all_names(a) | syntax.all_names(b))
    syntax.rename(b, {main: helper})
    _merge_module(a, b, set())
    return syntax.functions(a)[main], helper


def _call(fn: ast.FunctionDef, helper: str) -> str:
    return f"{helper}({', '.join(a.arg for a in fn.args.args)})"


def take_group(a: ast.Module, b: ast.Module, kind: str, rng: random.Random, b_name: str) -> Mutation | None:
    """Keep `a`'s rule, but for one group (or hidden + output) use `b`'s rule."""
    adopted = _adopt_rule(a, b, kind, b_name)
    if adopted is None:
        return None
    fn, helper = adopted
    groups = rng.choice(GROUP_SETS)
    at = syntax.body_start(fn)
    fn.body[at:at] = syntax.parse_statements(f"if {fn.args.args[2].arg} in {groups!r}:\n    return {_call(fn, helper)}")
    return f"take the {' and '.join(groups)} group's rule from {b_name}", "take_group"


def take_entry(a: ast.Module, b: ast.Module, kind: str, rng: random.Random, b_name: str) -> Mutation | None:
    """Keep `a`'s learning rates and take `b`'s weight decays, or the other way round."""
    adopted = _adopt_rule(a, b, kind, b_name)
    if adopted is None:
        return None
    fn, helper = adopted
    ends = syntax.returns(fn)
    if not ends or any(r.value is None for r in ends):
        return None
    key = rng.choice(SPEC.entries)
    other = syntax.fresh("other", syntax.all_names(a))
    at = syntax.body_start(fn)
    fn.body[at:at] = syntax.parse_statements(f"{other} = {_call(fn, helper)}")
    for ret in ends:
        assert ret.value is not None  # checked above
        ret.value = rewrite_entry(ret.value, key, f"{other}[{key!r}]", {}, SPEC.entries)
    return f"take the {key} rule from {b_name}", "take_" + ("lr" if key == "lr" else "wd")


SPEC = ProposalKind(
    name="scaling_rule",
    param_types={"scale": (SCALAR, SCALAR, LABEL, HPS)},
    slots=("W", "B", "grp", "base"),
    terms=SCALING_TERMS,
    crossovers=(take_group, take_entry, blend_functions),
    returns_state=False,
    blends=("geometric",),
    entries=("lr", "weight_decay"),
    examples=("constant", "mup", "mup_wd_sqrt"),
)
