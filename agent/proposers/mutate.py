"""The offline proposer: mutations on a candidate's syntax tree, in the spirit of the Lion program
search (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", section 2).

Operators: scale a constant, perturb a hyperparameter, swap a unary function for a compatible one,
swap the operands of a non-commutative operator, swap an operator, insert a term of the grammar
(grammar.py), delete a statement (rewiring its uses), and, given two parents, cross them over.
Every child passes `check_source`, differs from its parents and depends only on the given rng.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Callable, Mapping

from optforge.tasks.contracts import KINDS, check_source

from . import grammar as g
from .base import Proposal, ProposalFailed, ProposalRequest

Mutation = tuple[str, str]  # (one-line description, short tag for the child's name)
Operator = Callable[[ast.Module, str, random.Random], Mutation | None]

# Factors for scaling constants: small nudges and order-of-magnitude jumps, as in the Lion search.
SCALE_FACTORS = (1.5, 2.0, 10.0)
# Arguments of these calls are axes, sizes or indices: scaling them breaks shapes, not behaviour.
_AXIS_CALLS = frozenset(
    {
        "gather", "scatter", "unsqueeze", "squeeze", "sum", "mean", "amax", "amin", "max", "min",
        "norm", "std", "var", "softmax", "log_softmax", "logsumexp", "argmax", "argmin", "flatten",
        "view", "reshape", "transpose", "permute", "cumsum", "prod", "index_select", "narrow",
        "select", "topk", "sort", "split", "chunk", "cat", "stack", "repeat", "expand", "one_hot",
    }
)
_AXIS_KEYWORDS = frozenset({"dim", "axis", "dims", "keepdim"})
MAX_NAME = 48


def _where(fn: ast.FunctionDef | None, node: ast.AST) -> str:
    """`update line 24`: the line in the parent's source (inserted or crossed-in code has none)."""
    line = getattr(node, "lineno", None)
    place = fn.name if fn else "module"
    return f"{place} line {line}" if line else place


def _short(node: ast.AST, limit: int = 40) -> str:
    text = " ".join(line.strip() for line in ast.unparse(node).splitlines())  # thoughts are one line
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _owned(tree: ast.Module) -> list[tuple[ast.FunctionDef | None, ast.AST]]:
    """Every node with the function that holds it (None at module level), HPARAMS left out."""
    hp = g.hparams_dict(tree)
    found: list[tuple[ast.FunctionDef | None, ast.AST]] = []
    for top in tree.body:
        if not (isinstance(top, ast.Assign) and top.value is hp):
            fn = top if isinstance(top, ast.FunctionDef) else None
            found += [(fn, node) for node in ast.walk(top)]
    return found


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


# ------------------------------------------------------------------------------- point operators


def scale_constant(tree: ast.Module, kind: str, rng: random.Random) -> Mutation | None:
    """Multiply or divide a numeric constant (not an axis, not the 1 of `1 - beta`, not HPARAMS)."""
    parents = _parents(tree)
    options = [(fn, n) for fn, n in _owned(tree) if _scalable(n, parents)]
    if not options:
        return None
    fn, node = rng.choice(options)
    old = node.value  # type: ignore[attr-defined]
    assert isinstance(old, (int, float))
    factor = rng.choice(SCALE_FACTORS)
    value = float(f"{old * factor if rng.random() < 0.5 else old / factor:.4g}")
    new: float | int = int(value) if isinstance(old, int) and value.is_integer() else value
    node.value = new  # type: ignore[attr-defined]
    return f"scale {old!r} -> {new!r} in {_where(fn, node)}", "scaled"


def _scalable(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    if not (isinstance(node, ast.Constant) and g.is_number(node.value) and node.value != 0):
        return False
    child: ast.AST = node
    up = parents.get(node)
    if isinstance(up, ast.UnaryOp):
        child, up = up, parents.get(up)
    if isinstance(up, ast.keyword):
        return up.arg not in _AXIS_KEYWORDS
    if isinstance(up, ast.Call) and isinstance(up.func, ast.Attribute) and up.func.attr in _AXIS_CALLS:
        return False
    if isinstance(up, ast.Subscript):
        return False
    # `1 - x` is a complement (1 - beta, 1 - p): scaling its 1 breaks the idea, not a constant.
    return not (isinstance(up, ast.BinOp) and isinstance(up.op, ast.Sub) and up.left is child and node.value == 1)


def perturb_hparam(tree: ast.Module, kind: str, rng: random.Random) -> Mutation | None:
    """Move one HPARAMS value other than lr (the sweep tunes lr) within a range that suits it."""
    found = g.hparams_dict(tree)
    if found is None:
        return None
    slots = [k for k, v in _hp_values(found).items() if k != "lr" and isinstance(v, ast.Constant) and g.is_number(v.value)]
    if not slots:
        return None
    key = rng.choice(slots)
    node = _hp_values(found)[key]
    assert isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
    new = _perturbed(key, float(node.value), rng)
    if new == node.value:
        return None
    old, node.value = node.value, new
    return f"set {key} {old:g} -> {new:g}", key


def _perturbed(key: str, value: float, rng: random.Random) -> float:
    low = key.lower()
    if "eps" in low:  # a safeguard added to denominators: move by decades
        return min(1e-2, max(1e-12, value * 10.0 ** rng.choice((-1, 1)))) if value > 0 else 1e-8
    if any(w in low for w in ("decay", "wd", "l2")):
        if value == 0:
            return rng.choice((1e-4, 1e-3, 1e-2, 0.1))
        return float(f"{min(1.0, value * rng.choice((0.1, 0.5, 2.0, 10.0))):.4g}")
    if 0 <= value < 1:  # betas, momentum, interpolation weights: move 1 - value multiplicatively
        if value == 0:
            return rng.choice((0.5, 0.9, 0.99))
        return round(min(0.9999, max(0.0, 1 - (1 - value) * rng.choice((0.2, 0.5, 2.0, 5.0)))), 6)
    return float(f"{value * rng.choice((2 / 3, 0.5, 1.5, 2.0)):.4g}") if value else 0.1


def swap_unary(tree: ast.Module, kind: str, rng: random.Random) -> Mutation | None:
    """Replace a unary function by one whose domain and sign behaviour fit (grammar.may_replace)."""
    options = []
    for fn in g.functions(tree).values():
        scope = g.function_scope(tree, fn, kind)
        for node in ast.walk(fn):
            found = _unary_call(node, scope)
            if found is not None:
                table, name = found
                subs = sorted(n for n, u in table.items() if g.may_replace(table[name], u))
                options += [(fn, node, table, sub) for sub in subs]
    if not options:
        return None
    fn, node, table, new = rng.choice(options)
    assert isinstance(node, ast.Call)
    before = _call_label(node.func)
    if table is g.SCALAR_UNARY and new == "abs":  # math has no abs: use the builtin
        node.func = ast.Name("abs", ast.Load())
    elif isinstance(node.func, ast.Name):  # the builtin abs(x) -> math.<new>(x)
        node.func = ast.Attribute(ast.Name("math", ast.Load()), new, ast.Load())
    else:
        node.func.attr = new  # type: ignore[attr-defined]
    return f"swap {before} -> {_call_label(node.func)} in {_where(fn, node)}", new


def _call_label(func: ast.expr) -> str:
    """`torch.sign`, `math.cos`, `abs` as written; a tensor method as `.sqrt()`."""
    if isinstance(func, ast.Attribute) and not (isinstance(func.value, ast.Name) and func.value.id in ("torch", "math")):
        return f".{func.attr}()"
    return ast.unparse(func)


def _unary_call(node: ast.AST, scope: g.Scope) -> tuple[dict[str, g.Unary], str] | None:
    if not isinstance(node, ast.Call) or node.keywords:
        return None
    func, nargs = node.func, len(node.args)
    if isinstance(func, ast.Name) and func.id == "abs" and nargs == 1 and "abs" not in scope.env:
        return (g.SCALAR_UNARY, "abs") if scope.type_of(node.args[0]) == g.SCALAR else None
    if not isinstance(func, ast.Attribute):
        return None
    module = scope.module_of(func.value)
    if module == "torch" and nargs == 1 and func.attr in g.TENSOR_UNARY:
        return g.TENSOR_UNARY, func.attr
    if module == "math" and nargs == 1 and func.attr in g.SCALAR_UNARY:
        return g.SCALAR_UNARY, func.attr
    if module is None and nargs == 0 and func.attr in g.TENSOR_UNARY and scope.type_of(func.value) == g.TENSOR:
        return g.TENSOR_UNARY, func.attr
    return None


def _binops(tree: ast.Module, ops: tuple[type, ...]) -> list[tuple[ast.FunctionDef, ast.BinOp]]:
    """Binary operations of the given types between two non-constant operands."""
    return [
        (fn, n) for fn in g.functions(tree).values() for n in ast.walk(fn)
        if isinstance(n, ast.BinOp) and isinstance(n.op, ops)
        and not any(isinstance(s, ast.Constant) for s in (n.left, n.right))
    ]


def swap_operands(tree: ast.Module, kind: str, rng: random.Random) -> Mutation | None:
    """Swap the operands of `-` or `/` (swapping a commutative one would change nothing)."""
    options = []
    for fn, node in _binops(tree, (ast.Sub, ast.Div)):
        scope = g.function_scope(tree, fn, kind)
        safe = not isinstance(node.op, ast.Div) or _safe_divisor(node.left, scope)
        if ast.unparse(node.left) != ast.unparse(node.right) and safe:
            options.append((fn, node))
    if not options:
        return None
    fn, node = rng.choice(options)
    before = _short(node)
    node.left, node.right = node.right, node.left
    return f"swap operands of {before} in {_where(fn, node)}", "swap"


def _safe_divisor(divisor: ast.expr, scope: g.Scope) -> bool:
    """Can `divisor` divide without raising? Python numbers raise on zero (step is 0 in a
    schedule's first call); tensors give inf, which tier 0 reports as a status instead."""
    return scope.type_of(divisor) == g.TENSOR or _call_name(divisor) == "max"


_OPPOSITE = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
_OPPOSITE_CALLS = {"max": "min", "min": "max", "maximum": "minimum", "minimum": "maximum"}


def swap_operator(tree: ast.Module, kind: str, rng: random.Random) -> Mutation | None:
    """Turn + into -, * into / (and back), or max into min, between non-constant operands; never
    where it would make a possibly-zero number a divisor or undo a `/ max(1, n)` guard."""
    parents = _parents(tree)
    options: list[tuple[ast.FunctionDef, ast.AST]] = []
    for fn in g.functions(tree).values():
        scope = g.function_scope(tree, fn, kind)
        for node in ast.walk(fn):
            if isinstance(node, ast.BinOp) and type(node.op) in _OPPOSITE:
                constant = any(isinstance(s, ast.Constant) for s in (node.left, node.right))
                divides = isinstance(node.op, ast.Mult) and not _safe_divisor(node.right, scope)
                if not constant and not divides:
                    options.append((fn, node))
            elif _call_name(node) in _OPPOSITE_CALLS and len(node.args) >= 2:  # type: ignore[attr-defined]
                up = parents.get(node)
                if not (isinstance(up, ast.BinOp) and isinstance(up.op, ast.Div) and up.right is node):
                    options.append((fn, node))
    if not options:
        return None
    fn, node = rng.choice(options)
    before = _short(node)
    if isinstance(node, ast.BinOp):
        node.op = _OPPOSITE[type(node.op)]()
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        node.func.id = _OPPOSITE_CALLS[node.func.id]
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        node.func.attr = _OPPOSITE_CALLS[node.func.attr]
    return f"change {before} -> {_short(node)} in {_where(fn, node)}", "op"


def _call_name(node: ast.AST) -> str:
    func = node.func if isinstance(node, ast.Call) else None
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def insert_term(tree: ast.Module, kind: str, rng: random.Random) -> Mutation | None:
    """Insert a statement drawn from the grammar of update terms (grammar.py)."""
    return g.insert_term(tree, kind, rng)


def delete_statement(tree: ast.Module, kind: str, rng: random.Random) -> Mutation | None:
    """Delete an assignment, pointing later uses at one of its inputs of the same type (or at the
    previous value for `x = f(x)`), or delete an early-return branch."""
    options = []
    for fn in g.functions(tree).values():
        scope = g.function_scope(tree, fn, kind)
        for i in range(len(fn.body) - 1):
            options += [(fn, i, src) for src in _deletion_sources(fn, i, scope)]
    if not options:
        return None
    fn, i, source = rng.choice(options)
    stmt = fn.body.pop(i)
    target = g._assigned_name(stmt)
    if target is None or source is None:
        return f"delete `{_short(stmt, 50)}` from {_where(fn, stmt)}", "del"
    for j, later in enumerate(fn.body[i:], start=i):
        if g._assigned_name(later) == target:  # reassigned: rewire its right side, then stop
            later.value = g.substitute(later.value, target, source)  # type: ignore[attr-defined]
            break
        fn.body[j] = g.substitute(later, target, source)
    return f"delete `{_short(stmt, 50)}` from {_where(fn, stmt)} ({target} -> {_short(source)})", "del"


def _deletion_sources(fn: ast.FunctionDef, i: int, scope: g.Scope) -> list[ast.expr | None]:
    """What uses of the statement's variable may point at once it is gone ([None]: nothing to
    rewire; []: not deletable)."""
    stmt = fn.body[i]
    if isinstance(stmt, ast.If) and any(isinstance(s, ast.Return) for s in stmt.body):
        return [None] if any(isinstance(s, ast.Return) for s in fn.body[i + 1 :]) else []
    target = g._assigned_name(stmt)
    kind = scope.env.get(target) if target else None
    if target is None or kind not in (g.TENSOR, g.SCALAR) or _is_delta(fn, target):
        return []
    value = stmt.value  # type: ignore[attr-defined]
    bound = {a.arg for a in fn.args.args} | {g._assigned_name(s) for s in fn.body[:i]}
    if any(isinstance(n, ast.Name) and n.id == target for n in ast.walk(value)):
        return [None] if target in bound else []
    found: list[ast.expr | None] = [ast.Constant(1.0)] if kind == g.SCALAR else []
    return found + [
        n for n in _elementwise_operands(value)
        if (isinstance(n, ast.Name) and n.id in scope.env or _is_lookup(n, scope)) and scope.type_of(n) == kind
    ]


def _elementwise_operands(node: ast.expr) -> list[ast.expr]:
    """Names and lookups reached from `node` through elementwise operations only: they have the
    shape of the result (nll = -log_probs.gather(...) does not have log_probs' shape)."""
    if isinstance(node, ast.BinOp):
        return _elementwise_operands(node.left) + _elementwise_operands(node.right)
    if isinstance(node, ast.UnaryOp):
        return _elementwise_operands(node.operand)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _ELEMENTWISE:
        receiver = node.func.value
        is_module = isinstance(receiver, ast.Name) and receiver.id in ("torch", "math")
        inputs = node.args[:1] if is_module else [receiver]
        return [n for arg in inputs for n in _elementwise_operands(arg)]
    return [node] if isinstance(node, (ast.Name, ast.Subscript)) else []


_ELEMENTWISE = frozenset(g.TENSOR_UNARY) | frozenset(g.SCALAR_UNARY) | {"clamp", "clip", "neg", "reciprocal", "rsqrt"}


def _is_lookup(node: ast.AST, scope: g.Scope) -> bool:
    """state["key"] or hp["key"]: a value that exists wherever the function runs."""
    return isinstance(node, ast.Subscript) and scope.type_of(node.value) in (g.STATE, g.HPS)


def _is_delta(fn: ast.FunctionDef, name: str) -> bool:
    """Is `name` what an optimizer's update returns as its delta? (deleting it drops the lr)"""
    for ret in g.returns(fn):
        if isinstance(ret.value, ast.Tuple) and ret.value.elts:
            first = ret.value.elts[0]
            if isinstance(first, ast.Name) and first.id == name:
                return True
    return False


OPERATORS: dict[str, Operator] = {
    "scale_constant": scale_constant,
    "perturb_hparam": perturb_hparam,
    "swap_unary": swap_unary,
    "swap_operands": swap_operands,
    "swap_operator": swap_operator,
    "insert_term": insert_term,
    "delete_statement": delete_statement,
}
# Inserts carry most new ideas and pass tier 0 > 90% of the time; operand swaps pass ~30% and
# operator swaps 30-75%, so those are drawn less (measured: 80 single-operator children of the
# baselines per kind and operator).
DEFAULT_WEIGHTS: dict[str, float] = {
    "scale_constant": 2.0,
    "perturb_hparam": 2.0,
    "swap_unary": 2.0,
    "swap_operands": 0.5,
    "swap_operator": 0.5,
    "insert_term": 3.0,
    "delete_statement": 1.0,
}


# ------------------------------------------------------------------------------------ crossover


def crossover(a: ast.Module, b: ast.Module, kind: str, rng: random.Random, b_name: str) -> Mutation | None:
    """Cross parent `b` into `a` (in place) with one of the kind's crossover operators."""
    ops = [graft, blend_updates] if kind == "optimizer" else [blend_functions]
    rng.shuffle(ops)
    for op in ops:
        trial = g.clone(a)
        done = op(trial, g.strip_locations(g.clone(b)), kind, rng, b_name)
        if done is not None and ast.unparse(trial) != ast.unparse(a):
            a.body[:] = trial.body
            return done
    return None


def graft(a: ast.Module, b: ast.Module, kind: str, rng: random.Random, b_name: str) -> Mutation | None:
    """Keep `a`'s update; take init and HPARAMS from `b`, reconciled to what the update reads:
    every state key it reads is initialised (b's expression where b has the key) and every
    hyperparameter it reads keeps a value (a's where b lacks it)."""
    _merge_module(a, b, {"init", "update", "HPARAMS"})
    update, a_init, b_init = g.functions(a)["update"], g.functions(a)["init"], g.functions(b)["init"]
    a_state, b_state = _init_entries(a_init), _init_entries(b_init)
    a_hp, b_hp = g.hparams_dict(a), g.hparams_dict(b)
    if a_state is None or b_state is None or a_hp is None or b_hp is None:
        return None
    reads = _lookups(update, update.args.args[2].arg)
    pa, pb = a_init.args.args[0].arg, b_init.args.args[0].arg
    entries: dict[str, ast.expr] = {}
    for key in reads if reads is not None else [*a_state, *b_state]:
        fallback = g.clone(a_state.get(key) or g.parse_expr(f"torch.zeros_like({pa})"))
        entries[key] = b_state.get(key) or g.substitute(fallback, pa, ast.Name(pb, ast.Load()))
    b_init.body[-1] = ast.Return(ast.Dict([ast.Constant(k) for k in entries], list(entries.values())))
    a.body[a.body.index(a_init)] = b_init
    # b's values for what the update reads (lr always: the sweep centres on it), a's where b has none.
    hp_reads = _lookups(update, update.args.args[4].arg)
    wanted = [*_keys(a_hp)] if hp_reads is None else ["lr", *hp_reads]
    theirs, ours = _hp_values(b_hp), _hp_values(a_hp)
    merged = {k: theirs.get(k, ours.get(k)) for k in [*theirs, *ours] if k in wanted}
    a_hp.keys = [ast.Constant(k) for k, v in merged.items() if v is not None]
    a_hp.values = [v for v in merged.values() if v is not None]
    shared = sorted(set(entries) & set(b_state))
    return f"graft init/HPARAMS of {b_name} onto this update (shared state: {', '.join(shared) or 'none'})", "graft"


def blend_updates(a: ast.Module, b: ast.Module, kind: str, rng: random.Random, b_name: str) -> Mutation | None:
    """Run both updates side by side (b's locals, state keys and differing hyperparameters renamed)
    and step along a weighted sum of their deltas; the state is the union of both."""
    _merge_module(a, b, {"init", "update", "HPARAMS"})
    (ua, ia), (ub, ib) = ((g.functions(t)["update"], g.functions(t)["init"]) for t in (a, b))
    ra, rb, sa, sb = _final_return(ua), _final_return(ub), _init_entries(ia), _init_entries(ib)
    a_hp, b_hp = g.hparams_dict(a), g.hparams_dict(b)
    if ra is None or rb is None or sa is None or sb is None or a_hp is None or b_hp is None:
        return None
    # b's new state must be a plain literal: `return delta, state` (or `{**state, ...}`) would
    # hand a's old values back over a's new ones.
    if not isinstance(rb.elts[1], ast.Dict) or None in rb.elts[1].keys:
        return None
    names = _adopt_params(a, ua, ub)
    state, hp = ua.args.args[2].arg, ua.args.args[4].arg
    returned = ra.elts[1]
    taken = set(sa) | set(_lookups(ua, state) or ()) | set(_keys(returned) if isinstance(returned, ast.Dict) else ())
    keys = {k: g.fresh(k, taken) for k in list(sb) if k in taken}
    _rename_lookups(ub, names[2], keys)
    for literal in (rb.elts[1], ib.body[-1].value):  # type: ignore[attr-defined]
        literal.keys = [ast.Constant(keys.get(k.value, k.value)) for k in literal.keys]  # type: ignore[union-attr]
    _rename_lookups(ub, names[4], _adopt_hparams(a_hp, b_hp))
    w = g.fresh("blend", set(_keys(a_hp)))
    g.add_hparam(a, w, rng.choice((0.25, 0.5, 0.75)))
    da, db = ast.unparse(ra.elts[0]), ast.unparse(rb.elts[0])
    delta = g.parse_expr(f"{hp}[{w!r}] * ({da}) + (1 - {hp}[{w!r}]) * ({db})")
    merged = rb.elts[1]
    merged.keys[:0], merged.values[:0] = _dict_parts(ra.elts[1])
    ua.body = ua.body[:-1] + ub.body[g.body_start(ub) : -1] + [ast.Return(ast.Tuple([delta, merged], ast.Load()))]
    for key, value in sb.items():
        value = g.substitute(value, ib.args.args[0].arg, ast.Name(ia.args.args[0].arg, ast.Load()))
        g.add_dict_entry(ia.body[-1].value, keys.get(key, key), value)  # type: ignore[attr-defined]
    return f"blend deltas with {b_name}'s update (new {w}={ast.unparse(a_hp.values[-1])})", "blend"


def _adopt_hparams(ours: ast.Dict, theirs: ast.Dict) -> dict[str, str]:
    """Add b's hyperparameters to a's HPARAMS; one that a has with another value (lr aside: one
    sweep scales both) gets a new key. Returns b's renamed keys."""
    mine, taken, renamed = _hp_values(ours), set(_keys(ours)), {}
    for key, value in _hp_values(theirs).items():
        if key in mine and (key == "lr" or ast.unparse(value) == ast.unparse(mine[key])):
            continue
        new = g.fresh(key, taken) if key in mine else key
        renamed[key] = new
        ours.keys.append(ast.Constant(new))
        ours.values.append(value)
    return {k: v for k, v in renamed.items() if k != v}


def blend_functions(a: ast.Module, b: ast.Module, kind: str, rng: random.Random, b_name: str) -> Mutation | None:
    """Keep both programs as helpers and combine them: a weighted sum of losses; a product, mean
    or hand-over of schedules."""
    main = g.MAIN_FUNCTION[kind]
    taken = g.all_names(a) | g.all_names(b)
    name_a, name_b = g.fresh(f"_{main}_a", taken), g.fresh(f"_{main}_b", taken)
    g.rename(a, {main: name_a})
    g.rename(b, {main: name_b})
    _merge_module(a, b, set())
    args = [x.arg for x in g.functions(a)[name_a].args.args]
    call_a, call_b = (f"{n}({', '.join(args)})" for n in (name_a, name_b))
    w = rng.choice((0.25, 0.5, 0.75))
    mode = "sum" if kind == "loss" else rng.choice(("product", "mean", "handover"))
    expr, how = {
        "sum": (f"{w} * {call_a} + {1 - w} * {call_b}", f"weighted sum ({w})"),
        "mean": (f"{w} * {call_a} + {1 - w} * {call_b}", f"weighted mean ({w})"),
        "product": (f"{call_a} * {call_b}", "product"),
        "handover": (f"{call_a} if {args[0]} < int({w} * {args[1]}) else {call_b}", f"hand-over at {w}"),
    }[mode]
    a.body.append(ast.parse(f"def {main}({', '.join(args)}):\n    return {expr}\n").body[0])
    return f"combine with {b_name}: {how}", "blend"


def _dict_parts(expr: ast.expr) -> tuple[list[ast.expr | None], list[ast.expr]]:
    """Keys and values to splice into a dict literal: expr's own, or `**expr`."""
    return (list(expr.keys), list(expr.values)) if isinstance(expr, ast.Dict) else ([None], [expr])


def _hp_values(d: ast.Dict) -> dict[str, ast.expr]:
    pairs = zip(d.keys, d.values, strict=True)
    return {k.value: v for k, v in pairs if isinstance(k, ast.Constant) and isinstance(k.value, str)}


def _keys(d: ast.Dict) -> list[str]:
    return [k.value for k in d.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]


def _init_entries(fn: ast.FunctionDef) -> dict[str, ast.expr] | None:
    """key -> initial value, when init ends in its only return of a dict literal with str keys."""
    last = fn.body[-1]
    if len(g.returns(fn)) != 1 or not (isinstance(last, ast.Return) and isinstance(last.value, ast.Dict)):
        return None
    keys = _keys(last.value)
    return dict(zip(keys, last.value.values, strict=True)) if len(keys) == len(last.value.keys) else None


def _final_return(fn: ast.FunctionDef) -> ast.Tuple | None:
    """The (delta, new_state) tuple when the function's only return is its last statement."""
    last = fn.body[-1]
    if len(g.returns(fn)) == 1 and isinstance(last, ast.Return) and isinstance(last.value, ast.Tuple):
        return last.value if len(last.value.elts) == 2 else None
    return None


def _lookups(fn: ast.FunctionDef, name: str) -> list[str] | None:
    """Keys read as name["k"] / name.get("k"), in order; None if `name` is used any other way
    (then every key must be assumed read), apart from being returned or unpacked."""
    parents, keys = _parents(fn), []
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Name) and node.id == name):
            continue
        up = parents.get(node)
        key = _lookup_key(up, parents.get(up) if up else None)
        if key is not None:
            keys.append(key)
        elif not isinstance(up, (ast.Tuple, ast.Dict, ast.Return)):
            return None
    return list(dict.fromkeys(keys))


def _lookup_key(up: ast.AST | None, upup: ast.AST | None) -> str | None:
    if isinstance(up, ast.Subscript) and isinstance(up.slice, ast.Constant) and isinstance(up.slice.value, str):
        return up.slice.value
    if isinstance(up, ast.Attribute) and up.attr == "get" and isinstance(upup, ast.Call) and upup.args:
        first = upup.args[0]
        return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
    return None


def _rename_lookups(fn: ast.FunctionDef, name: str, mapping: dict[str, str]) -> None:
    parents = _parents(fn)
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and node.id == name:
            up = parents.get(node)
            key = _lookup_key(up, parents.get(up) if up else None)
            if key in mapping:
                const = up.slice if isinstance(up, ast.Subscript) else parents[up].args[0]  # type: ignore[attr-defined,index]
                const.value = mapping[key]  # type: ignore[union-attr]


def _adopt_params(a: ast.Module, ua: ast.FunctionDef, ub: ast.FunctionDef) -> list[str]:
    """Give `ub` the parameter names of `ua` and rename its locals that would clash with `a`.

    A parameter that either update reassigns (`grad = ...`) reaches b through a copy taken at the
    start of the blended update, so neither program sees the other's rewrite of it. Returns the
    names b's body now uses for its parameters, in order."""
    params = {pb.arg: pa.arg for pb, pa in zip(ub.args.args, ua.args.args, strict=True)}
    ours = g.all_names(ua) | set(_bindings(a)) | set(params.values())
    taken = g.all_names(a) | g.all_names(ub)
    stored_a, stored_b = (_stored(fn) for fn in (ua, ub))
    mapping, copies = dict(params), []
    for pb, pa in params.items():
        if pb in stored_b or pa in stored_a:
            mapping[pb] = g.fresh(pa, taken)
            copies += g.parse_statements(f"{mapping[pb]} = {pa}")
    mapping.update({n: g.fresh(n, taken) for n in sorted(stored_b - set(params)) if n in ours})
    g.rename(ub, mapping)
    at = g.body_start(ua)
    ua.body[at:at] = copies
    return [mapping[p] for p in params]


def _stored(fn: ast.FunctionDef) -> set[str]:
    return {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _bindings(tree: ast.Module) -> dict[str, ast.stmt]:
    found: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.Assign):
            found.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
    return found


def _merge_module(a: ast.Module, b: ast.Module, skip: set[str]) -> None:
    """Bring `b`'s imports, constants and helper functions (all but `skip`) into `a`; `b`'s
    module-level names that `a` binds differently are renamed in `b` first."""
    ours, theirs = _bindings(a), _bindings(b)
    taken = g.all_names(a) | g.all_names(b)
    bound = set(ours) | set(g.module_aliases(a))
    clash = {n: g.fresh(n, taken) for n, s in theirs.items() if n not in skip and n in bound and (n not in ours or ast.unparse(ours[n]) != ast.unparse(s))}
    g.rename(b, clash)
    imports = [s for s in a.body if isinstance(s, (ast.Import, ast.ImportFrom))]
    known = {ast.unparse(s) for s in imports}
    new_imports = [s for s in b.body if isinstance(s, (ast.Import, ast.ImportFrom)) and ast.unparse(s) not in known]
    ours = _bindings(a)
    new_defs = list({id(s): s for n, s in _bindings(b).items() if n not in skip and n not in ours}.values())
    at = a.body.index(imports[-1]) + 1 if imports else 0
    a.body[at:at] = new_imports
    # Constants go before the first function, functions after the last, as a person would write.
    first_def = next(i for i, s in enumerate(a.body) if isinstance(s, ast.FunctionDef))
    a.body[first_def:first_def] = [s for s in new_defs if not isinstance(s, ast.FunctionDef)]
    a.body += [s for s in new_defs if isinstance(s, ast.FunctionDef)]


# ------------------------------------------------------------------------------ simplification


def simplify(tree: ast.Module, kind: str) -> None:
    """Remove what cannot matter, as the Lion search does before deduplicating: assignments
    nothing reads and, for optimizers, state entries and hyperparameters the update never reads.
    Keeps lineages from bloating and the state-memory descriptor honest."""
    changed = True
    while changed:  # each removal can leave more behind it unread
        if kind == "optimizer":
            _prune_optimizer(tree)
        changed = any(_drop_dead_assignment(fn) for fn in g.functions(tree).values())


def _prune_optimizer(tree: ast.Module) -> None:
    fns = g.functions(tree)
    update, init, hparams = fns.get("update"), fns.get("init"), g.hparams_dict(tree)
    if update is None or init is None or hparams is None:
        return
    reads = _lookups(update, update.args.args[2].arg)
    if reads is not None:
        literals = [r.value.elts[1] for r in g.returns(update) if isinstance(r.value, ast.Tuple) and len(r.value.elts) == 2]
        for literal in literals + [r.value for r in g.returns(init)]:
            if isinstance(literal, ast.Dict):
                _keep_keys(literal, set(reads))
    hp_reads = _lookups(update, update.args.args[4].arg)
    if hp_reads is not None:
        _keep_keys(hparams, {"lr", *hp_reads})  # lr stays: the sweep is centred on it


def _drop_dead_assignment(fn: ast.FunctionDef) -> bool:
    """Remove the top-level assignments to one name that is read nowhere but in its own updates
    (`x = ...; x = x + 1`, x never used); True if one was removed."""
    assigned = [s for s in fn.body if g._assigned_name(s)]
    loads = [n for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    for name in dict.fromkeys(g._assigned_name(s) for s in assigned):
        own = [s for s in assigned if g._assigned_name(s) == name]
        inside = {id(n) for s in own for n in ast.walk(s.value)}  # type: ignore[attr-defined]
        read = any(n.id == name and id(n) not in inside for n in loads)
        # a call like x.add_(...) changes x in place: such an assignment is not dead code
        in_place = any(isinstance(n, ast.Attribute) and n.attr.endswith("_") for s in own for n in ast.walk(s))
        if not read and not in_place and len(own) < len(fn.body):
            fn.body = [s for s in fn.body if s not in own]
            return True
    return False


def _keep_keys(literal: ast.Dict, keep: set[str]) -> None:
    pairs = [(k, v) for k, v in zip(literal.keys, literal.values, strict=True) if not isinstance(k, ast.Constant) or k.value in keep]
    literal.keys, literal.values = [k for k, _ in pairs], [v for _, v in pairs]


# ------------------------------------------------------------------------------------ proposer


class MutationProposer:
    """Offline proposer: 1 to `max_mutations` operators per child (a crossover first when the
    request has two parents), retried up to `max_attempts` times until a child passes the
    contract, differs from its parents and stays under `max_source_bytes` (or its parent's size,
    if larger). Deterministic given the rng."""

    def __init__(
        self,
        name: str = "mutate",
        *,
        min_mutations: int = 1,
        max_mutations: int = 3,
        max_attempts: int = 30,
        weights: Mapping[str, float] | None = None,
        crossover_rate: float = 0.9,
        max_source_bytes: int = 6000,
    ) -> None:
        weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        unknown = sorted(set(weights) - set(OPERATORS))
        if unknown:
            raise ValueError(f"unknown mutation operator(s) {unknown}: use {sorted(OPERATORS)}")
        if not 1 <= min_mutations <= max_mutations:
            raise ValueError(f"need 1 <= min_mutations <= max_mutations, got {min_mutations}, {max_mutations}")
        if max_attempts < 1 or not 0.0 <= crossover_rate <= 1.0:
            raise ValueError("max_attempts must be >= 1 and crossover_rate within [0, 1]")
        self.name = name
        self.min_mutations, self.max_mutations = min_mutations, max_mutations
        self.max_attempts, self.crossover_rate = max_attempts, crossover_rate
        # Baselines are 0.3-0.8 kB of code; 6 kB leaves room for ideas while stopping the bloat
        # that repeated crossover grows (a loss lineage reached the 20 kB contract limit).
        self.max_source_bytes = max_source_bytes
        self.weights = {k: w for k, w in weights.items() if w > 0}

    def propose(self, request: ProposalRequest, rng: random.Random) -> Proposal:
        kind = request.kind
        if kind not in KINDS or not request.parents:
            raise ProposalFailed(f"mutate needs a kind in {KINDS} and at least one parent")
        first = request.parents[0]
        errors = check_source(first.source, kind)
        if errors:
            raise ProposalFailed(f"parent {first.name!r} is not a valid {kind} candidate: {errors[0]}")
        # A broken second parent only costs the crossover; the first is what gets mutated.
        parents = [p for p in request.parents if p is first or not check_source(p.source, kind)]
        trees = [_parse(p.source, kind) for p in parents]
        seen = {_normal(t) for t in trees} | {_normal(_parse(p.source)) for p in parents}
        limit = max(self.max_source_bytes, len(first.source.encode()))
        sizes = [len(_normal(t)) for t in trees]
        for _ in range(self.max_attempts):
            child = self._attempt(trees, [p.name for p in parents], kind, rng, (limit, sizes))
            if child is None or _normal(child[0]) in seen:
                continue
            tree, mutations = child
            name = child_name(first.name, [tag for _, tag in mutations])
            source = _render(tree, name, [p.name for p in parents])
            if len(source.encode()) <= limit and not check_source(source, kind):
                thought = "; ".join(desc for desc, _ in mutations)
                ids = tuple(p.id for p in request.parents)
                return Proposal(source=source, name=name, proposer=self.name, parent_ids=ids, thought=thought)
        raise ProposalFailed(f"no valid mutation of {first.name!r} in {self.max_attempts} attempts")

    def _attempt(
        self, trees: list[ast.Module], names: list[str], kind: str, rng: random.Random, size: tuple[int, list[int]]
    ) -> tuple[ast.Module, list[Mutation]] | None:
        tree, applied = g.clone(trees[0]), []
        (limit, sizes) = size
        # Near the size limit only shrinking or same-size operators are drawn (parsimony).
        crowded = sizes[0] > 0.8 * limit
        crossable = len(trees) > 1 and sum(sizes[:2]) <= limit
        if crossable and rng.random() < self.crossover_rate:
            crossed = crossover(tree, trees[1], kind, rng, names[1])
            applied += [crossed] if crossed else []
        for _ in range(rng.randint(self.min_mutations, self.max_mutations) - len(applied)):
            done = self._mutate_once(tree, kind, rng, crowded)
            if done is None:
                break
            applied.append(done)
        simplify(tree, kind)
        return (tree, applied) if applied else None

    def _mutate_once(self, tree: ast.Module, kind: str, rng: random.Random, crowded: bool) -> Mutation | None:
        """Apply one operator drawn by weight; an operator that does not apply is set aside and
        another drawn. Operators work on a copy, so a failed one leaves no half-made change."""
        pool = {k: w for k, w in self.weights.items() if not (crowded and k == "insert_term")}
        while pool:
            name = rng.choices(sorted(pool), weights=[pool[k] for k in sorted(pool)])[0]
            trial = g.clone(tree)
            done = OPERATORS[name](trial, kind, rng)
            if done is not None:
                tree.body[:] = trial.body
                return done
            del pool[name]
        return None


def _parse(source: str, kind: str | None = None) -> ast.Module:
    """The module without its docstring; simplified too when `kind` is given."""
    tree = ast.parse(source)
    tree.body = [s for s in tree.body if not _is_docstring(s)]
    if kind is not None:
        simplify(tree, kind)
    return tree


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _normal(tree: ast.Module) -> str:
    """The code as the proposer compares it: no docstring, imports completed, unparsed."""
    plain = ast.Module([s for s in tree.body if not _is_docstring(s)], type_ignores=[])
    g.ensure_imports(plain)
    return ast.unparse(plain)


def _render(tree: ast.Module, name: str, parents: list[str]) -> str:
    """Readable source with a one-line provenance docstring (the parent's would now be wrong)."""
    doc = ast.Expr(ast.Constant(f"{name}: mutated from {' x '.join(parents)} by optforge's mutate proposer."))
    module = ast.Module([doc] + [s for s in tree.body if not _is_docstring(s)], type_ignores=[])
    g.ensure_imports(module)
    return ast.unparse(ast.fix_missing_locations(module)) + "\n"


def child_name(parent: str, tags: list[str]) -> str:
    """`<parent>_<tags>`, at most MAX_NAME characters, the parent's tail cut first."""
    base = re.sub(r"[^a-z0-9_]+", "_", parent.lower()).strip("_") or "candidate"
    suffix = re.sub(r"[^a-z0-9_]+", "_", "_".join(tags).lower()).strip("_") or "mut"
    base = base[: max(8, MAX_NAME - len(suffix) - 1)].rstrip("_")
    return f"{base}_{suffix}"[:MAX_NAME].rstrip("_")


__all__ = ["DEFAULT_WEIGHTS", "OPERATORS", "MutationProposer", "child_name", "crossover", "simplify"]
