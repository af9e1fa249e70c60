"""The grammar of the mutation proposer: the unary functions that may replace one another, and
the terms it may insert into a candidate (and how to insert them). The type analysis and tree
helpers they rely on are in syntax.py.
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass

from optforge.agent.proposers import kinds

from .syntax import (
    TENSOR,
    _assigned_name,
    add_dict_entry,
    add_hparam,
    all_names,
    body_start,
    fresh,
    function_scope,
    functions,
    hparam_keys,
    parse_expr,
    parse_statements,
    returns,
    statements,
    string_constants,
)


@dataclass(frozen=True)
class Unary:
    """A unary function and the facts that decide which others may replace it."""

    name: str
    any_domain: bool  # defined for negative inputs (sqrt and log1p are not)
    keeps_nonneg: bool  # a nonnegative input gives a nonnegative output
    always_nonneg: bool  # the output is nonnegative wherever it is defined
    odd: bool  # keeps the sign of its input, so it can stand in for sign() in a step direction


# torch.<name>(x) and x.<name>() both exist for each of these.
TENSOR_UNARY = {
    u.name: u
    for u in (
        Unary("sign", True, True, False, True),
        Unary("tanh", True, True, False, True),
        Unary("atan", True, True, False, True),
        Unary("abs", True, True, True, False),
        Unary("sqrt", False, True, True, False),
        Unary("square", True, True, True, False),
        Unary("exp", True, True, True, False),
        Unary("sigmoid", True, True, True, False),
        Unary("log1p", False, True, True, False),
        Unary("relu", True, True, True, False),
    )
}
# math.<name>(x); abs is the builtin.
SCALAR_UNARY = {
    u.name: u
    for u in (
        Unary("cos", True, False, False, False),
        Unary("sin", True, False, False, False),
        Unary("tanh", True, True, False, True),
        Unary("atan", True, True, False, True),
        Unary("sqrt", False, True, True, False),
        Unary("exp", True, True, True, False),
        Unary("log1p", False, True, True, False),
        Unary("abs", True, True, True, False),
    )
}


def may_replace(old: Unary, new: Unary) -> bool:
    """Can `new` stand where `old` was without leaving its domain or flipping a sign contract?

    What `old` required of its argument (nonnegative for sqrt) the argument provides; what `old`
    promised of its output (nonnegative, or the input's sign) the replacement must keep promising.
    """
    if old.name == new.name:
        return False
    arg_nonneg = not old.any_domain
    if not (new.any_domain or arg_nonneg):
        return False
    out_nonneg = old.always_nonneg or (arg_nonneg and old.keeps_nonneg)
    if out_nonneg and not (new.always_nonneg or (arg_nonneg and new.keeps_nonneg)):
        return False
    return not (old.odd and not arg_nonneg and not new.odd)


# ---------------------------------------------------------------------------------------------
# The grammar of insertable terms. Placeholders: {x} the tensor being transformed, {y} another
# tensor in scope, {e} what a return statement returned, {hp}/{state}/{param}/{step} and
# {z}/{t} (logits, targets) and {s}/{T} (step, total_steps): the function's own parameter names.


Choice = float | str | tuple[str, ...]


@dataclass(frozen=True)
class Term:
    """One insertable update term.

    role "tensor": statements `text` after a tensor variable is computed, rewriting it in place;
    role "result": statements at the function start, then every return value rewritten by
    `combine` ({e} is the old value; for optimizers, the delta part of the return).

    A result term with an `entry` rewrites one entry of a returned dict instead (a scaling rule's
    "lr" or "weight_decay"): {e} is that entry's old value and {e_<key>} another entry's, as the
    return statement has them before the term (see rewrite_entry).
    """

    tag: str
    role: str
    text: str = ""
    combine: str = ""
    # placeholder -> values to pick from: numbers (and tuples) are written as literals, a str is
    # source text inserted as is ("-1 / 3")
    choices: tuple[tuple[str, tuple[Choice, ...]], ...] = ()
    hparams: tuple[tuple[str, str, tuple[float, ...]], ...] = ()  # placeholder, key, defaults
    state: tuple[tuple[str, str, str], ...] = ()  # placeholder, key, local holding the new value
    local: tuple[tuple[str, str], ...] = ()  # placeholder, base name of a fresh local
    needs_other: bool = False
    entry: str = ""  # the key of the returned dict that `combine` rewrites ("": the whole value)


def source_text(value: Choice) -> str:
    """A choice as code: a str is code already; anything else is written as its literal."""
    return value if isinstance(value, str) else repr(value)


def insert_term(tree: ast.Module, kind: str, rng: random.Random) -> tuple[str, str] | None:
    """Insert one term of the kind's grammar into `tree` (in place); (description, tag) or None."""
    spec = kinds.proposal_kind(kind)
    fn = functions(tree).get(spec.main_function)
    if fn is None:
        return None
    terms = list(spec.terms)
    rng.shuffle(terms)
    for term in terms:
        done = _try_term(tree, fn, kind, term, rng)
        if done is not None:
            return done, term.tag
    return None


def _try_term(tree: ast.Module, fn: ast.FunctionDef, kind: str, term: Term, rng: random.Random) -> str | None:
    spec = kinds.proposal_kind(kind)
    names = dict(zip(spec.slots, (a.arg for a in fn.args.args), strict=True))
    ends = returns(fn)
    if not ends or (spec.returns_state and not all(_is_pair(r) for r in ends)):
        return None
    at, where = body_start(fn), f"{fn.name}"
    if term.role == "tensor":
        site = _pick_site(tree, fn, kind, term, rng)
        if site is None:
            return None
        at, names["x"], other = site
        names["y"] = other or ""
        where = f"{names['x']} in {fn.name}"
    taken = all_names(tree)
    names.update({ph: fresh(base, taken) for ph, base in term.local})
    names.update({ph: source_text(rng.choice(values)) for ph, values in term.choices})
    hp_taken, key_taken = hparam_keys(tree), string_constants(tree)
    new_hp = {fresh(base, hp_taken): rng.choice(values) for _, base, values in term.hparams}
    names.update({ph: repr(key) for (ph, _, _), key in zip(term.hparams, new_hp, strict=True)})
    new_state = {fresh(base, key_taken): names[holder] for _, base, holder in term.state}
    names.update({ph: repr(key) for (ph, _, _), key in zip(term.state, new_state, strict=True)})
    if new_state and "init" not in functions(tree):
        return None
    fn.body[at:at] = parse_statements(term.text.format(**names)) if term.text else []
    for ret in ends:
        _combine(ret, term, names, kind)
    for key, value in new_hp.items():
        add_hparam(tree, key, value)
    for key, holder in new_state.items():
        _add_state(tree, fn, key, holder)
    extras = [f"{k}={v:g}" for k, v in new_hp.items()] + [f"state {k!r}" for k in new_state]
    return f"insert {term.tag} on {where}" + (f" (new {', '.join(extras)})" if extras else "")


def _is_pair(ret: ast.Return) -> bool:
    return isinstance(ret.value, ast.Tuple) and len(ret.value.elts) == 2


def _combine(ret: ast.Return, term: Term, names: dict[str, str], kind: str) -> None:
    combine = term.combine
    if not combine or combine == "{e}":
        return
    assert ret.value is not None  # _try_term checked that every return returns something
    if term.entry:
        ret.value = rewrite_entry(ret.value, term.entry, combine, names, kinds.proposal_kind(kind).entries)
    elif kinds.proposal_kind(kind).returns_state:  # rewrite the value, the first element of (value, new_state)
        elts = ret.value.elts  # type: ignore[attr-defined]
        elts[0] = parse_expr(combine.format(e=ast.unparse(elts[0]), **names))
    else:
        ret.value = parse_expr(combine.format(e=ast.unparse(ret.value), **names))


def rewrite_entry(
    value: ast.expr, key: str, combine: str, names: dict[str, str], entries: tuple[str, ...] = ()
) -> ast.expr:
    """`value`, a returned dict, with its entry `key` rewritten by `combine`, where {e} is the
    entry's old value and {e_<k>} that of entry k (for each k of the literal, or of `entries`).
    A dict literal that has the key is edited in place; any other value (a name, a call, a
    literal with ** or without the key) becomes `{**value, key: ...}`, reading value[k]."""
    literal = isinstance(value, ast.Dict) and all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in value.keys)
    if isinstance(value, ast.Dict) and literal:
        keys = [k.value for k in value.keys]  # type: ignore[union-attr]
        if key in keys and set(entries) <= set(keys):
            old = {f"e_{k}": ast.unparse(v) for k, v in zip(keys, value.values, strict=True)}
            at = keys.index(key)
            value.values[at] = parse_expr(combine.format(e=old[f"e_{key}"], **old, **names))
            return value
    text = ast.unparse(value)
    old = {f"e_{k}": f"({text})[{k!r}]" for k in (*entries, key)}
    new = parse_expr(combine.format(e=old[f"e_{key}"], **old, **names))
    return ast.Dict(keys=[None, ast.Constant(key)], values=[value, new])


def _add_state(tree: ast.Module, update: ast.FunctionDef, key: str, holder: str) -> None:
    """Track `holder` as state `key`: returned by update, initialised to zeros by init."""
    for ret in returns(update):
        elts = ret.value.elts  # type: ignore[union-attr]
        elts[1] = add_dict_entry(elts[1], key, ast.Name(holder, ast.Load()))
    init = functions(tree)["init"]
    zeros = f"torch.zeros_like({init.args.args[0].arg})"
    for ret in returns(init):
        if ret.value is not None:
            ret.value = add_dict_entry(ret.value, key, parse_expr(zeros))


def _pick_site(
    tree: ast.Module, fn: ast.FunctionDef, kind: str, term: Term, rng: random.Random
) -> tuple[int, str, str | None] | None:
    """Where a tensor term goes: right after a tensor variable is computed (or at the start, for
    the gradient), never on the returned delta, and only before any return so new state is bound
    wherever the function returns. (index, variable, another tensor in scope or None)."""
    scope = function_scope(tree, fn, kind)
    deltas = {r.value.elts[0].id for r in returns(fn) if _is_pair(r) and isinstance(r.value.elts[0], ast.Name)}  # type: ignore[union-attr]
    first = fn.args.args[0].arg
    sites: list[tuple[int, str]] = []
    if scope.env.get(first) == TENSOR:
        sites.append((body_start(fn), first))
    for i, stmt in enumerate(fn.body):
        if any(isinstance(s, ast.Return) for s in statements([stmt])):
            break
        target = _assigned_name(stmt)
        if target and scope.env.get(target) == TENSOR and target not in deltas and _used(fn.body[i + 1 :], target):
            sites.append((i + 1, target))
    rng.shuffle(sites)
    for at, var in sites:
        before = [first] + [n for s in fn.body[:at] if (n := _assigned_name(s))]
        others = sorted({n for n in before if n != var and scope.env.get(n) == TENSOR})
        if not term.needs_other:
            return at, var, None
        if others:
            return at, var, rng.choice(others)
    return None


def _used(body: list[ast.stmt], name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for s in body for n in ast.walk(s))
