"""The point mutation operators of the offline proposer (mutate.py): scale a constant, perturb a
hyperparameter, swap a unary function for a compatible one, swap the operands of a
non-commutative operator, swap an operator, insert a term of the grammar (grammar.py), delete a
statement (rewiring its uses). Each returns a (description, tag) Mutation, or None where it finds
nothing to change.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Callable

from . import grammar, syntax

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
    hp = syntax.hparams_dict(tree)
    found: list[tuple[ast.FunctionDef | None, ast.AST]] = []
    for top in tree.body:
        if not (isinstance(top, ast.Assign) and top.value is hp):
            fn = top if isinstance(top, ast.FunctionDef) else None
            found += [(fn, node) for node in ast.walk(top)]
    return found


# ------------------------------------------------------------------------------- point operators


def scale_constant(tree: ast.Module, kind: str, rng: random.Random) -> Mutation | None:
    """Multiply or divide a numeric constant (not an axis, not the 1 of `1 - beta`, not HPARAMS)."""
    parents = syntax._parents(tree)
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
    if not (isinstance(node, ast.Constant) and syntax.is_number(node.value) and node.value != 0):
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
    found = syntax.hparams_dict(tree)
    if found is None:
        return None
    slots = [k for k, v in syntax._hp_values(found).items() if k != "lr" and isinstance(v, ast.Constant) and syntax.is_number(v.value)]
    if not slots:
        return None
    key = rng.choice(slots)
    node = syntax._hp_values(found)[key]
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
    for fn in syntax.functions(tree).values():
        scope = syntax.function_scope(tree, fn, kind)
        for node in ast.walk(fn):
            found = _unary_call(node, scope)
            if found is not None:
                table, name = found
                subs = sorted(n for n, u in table.items() if grammar.may_replace(table[name], u))
                options += [(fn, node, table, sub) for sub in subs]
    if not options:
        return None
    fn, node, table, new = rng.choice(options)
    assert isinstance(node, ast.Call)
    before = _call_label(node.func)
    if table is grammar.SCALAR_UNARY and new == "abs":  # math has no abs: use the builtin
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


def _unary_call(node: ast.AST, scope: syntax.Scope) -> tuple[dict[str, grammar.Unary], str] | None:
    if not isinstance(node, ast.Call) or node.keywords:
        return None
    func, nargs = node.func, len(node.args)
    if isinstance(func, ast.Name) and func.id == "abs" and nargs == 1 and "abs" not in scope.env:
        return (grammar.SCALAR_UNARY, "abs") if scope.type_of(node.args[0]) == syntax.SCALAR else None
    if not isinstance(func, ast.Attribute):
        return None
    module = scope.module_of(func.value)
    if module == "torch" and nargs == 1 and func.attr in grammar.TENSOR_UNARY:
        return grammar.TENSOR_UNARY, func.attr
    if module == "math" and nargs == 1 and func.attr in grammar.SCALAR_UNARY:
        return grammar.SCALAR_UNARY, func.attr
    if module is None and nargs == 0 and func.attr in grammar.TENSOR_UNARY and scope.type_of(func.value) == syntax.TENSOR:
        return grammar.TENSOR_UNARY, func.attr
    return None


def _binops(tree: ast.Module, ops: tuple[type, ...]) -> list[tuple[ast.FunctionDef, ast.BinOp]]:
    """Binary operations of the given types between two non-constant operands."""
    return [
        (fn, n) for fn in syntax.functions(tree).values() for n in ast.walk(fn)
        if isinstance(n, ast.BinOp) and isinstance(n.op, ops)
        and not any(isinstance(s, ast.Constant) for s in (n.left, n.right))
    ]


def swap_operands(tree: ast.Module, kind: str, rng: random.Random) -> Mutation | None:
    """Swap the operands of `-` or `/` (swapping a commutative one would change nothing)."""
    options = []
    for fn, node in _binops(tree, (ast.Sub, ast.Div)):
        scope = syntax.function_scope(tree, fn, kind)
        safe = not isinstance(node.op, ast.Div) or _safe_divisor(node.left, scope)
        if ast.unparse(node.left) != ast.unparse(node.right) and safe:
            options.append((fn, node))
    if not options:
        return None
    fn, node = rng.choice(options)
    before = _short(node)
    node.left, node.right = node.right, node.left
    return f"swap operands of {before} in {_where(fn, node)}", "swap"


def _safe_divisor(divisor: ast.expr, scope: syntax.Scope) -> bool:
    """Can `divisor` divide without raising? Python numbers raise on zero (step is 0 in a
    schedule's first call); tensors give inf, which tier 0 reports as a status instead."""
    return scope.type_of(divisor) == syntax.TENSOR or _call_name(divisor) == "max"


_OPPOSITE = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
_OPPOSITE_CALLS = {"max": "min", "min": "max", "maximum": "minimum", "minimum": "maximum"}


def swap_operator(tree: ast.Module, kind: str, rng: random.Random) -> Mutation | None:
    """Turn + into -, * into / (and back), or max into min, between non-constant operands; never
    where it would make a possibly-zero number a divisor or undo a `/ max(1, n)` guard."""
    parents = syntax._parents(tree)
    options: list[tuple[ast.FunctionDef, ast.AST]] = []
    for fn in syntax.functions(tree).values():
        scope = syntax.function_scope(tree, fn, kind)
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
    return grammar.insert_term(tree, kind, rng)


def delete_statement(tree: ast.Module, kind: str, rng: random.Random) -> Mutation | None:
    """Delete an assignment, pointing later uses at one of its inputs of the same type (or at the
    previous value for `x = f(x)`), or delete an early-return branch."""
    options = []
    for fn in syntax.functions(tree).values():
        scope = syntax.function_scope(tree, fn, kind)
        for i in range(len(fn.body) - 1):
            options += [(fn, i, src) for src in _deletion_sources(fn, i, scope)]
    if not options:
        return None
    fn, i, source = rng.choice(options)
    stmt = fn.body.pop(i)
    target = syntax._assigned_name(stmt)
    if target is None or source is None:
        return f"delete `{_short(stmt, 50)}` from {_where(fn, stmt)}", "del"
    for j, later in enumerate(fn.body[i:], start=i):
        if syntax._assigned_name(later) == target:  # reassigned: rewire its right side, then stop
            later.value = syntax.substitute(later.value, target, source)  # type: ignore[attr-defined]
            break
        fn.body[j] = syntax.substitute(later, target, source)
    return f"delete `{_short(stmt, 50)}` from {_where(fn, stmt)} ({target} -> {_short(source)})", "del"


def _deletion_sources(fn: ast.FunctionDef, i: int, scope: syntax.Scope) -> list[ast.expr | None]:
    """What uses of the statement's variable may point at once it is gone ([None]: nothing to
    rewire; []: not deletable)."""
    stmt = fn.body[i]
    if isinstance(stmt, ast.If) and any(isinstance(s, ast.Return) for s in stmt.body):
        return [None] if any(isinstance(s, ast.Return) for s in fn.body[i + 1 :]) else []
    target = syntax._assigned_name(stmt)
    kind = scope.env.get(target) if target else None
    if target is None or kind not in (syntax.TENSOR, syntax.SCALAR) or _is_delta(fn, target):
        return []
    value = stmt.value  # type: ignore[attr-defined]
    bound = {a.arg for a in fn.args.args} | {syntax._assigned_name(s) for s in fn.body[:i]}
    if any(isinstance(n, ast.Name) and n.id == target for n in ast.walk(value)):
        return [None] if target in bound else []
    found: list[ast.expr | None] = [ast.Constant(1.0)] if kind == syntax.SCALAR else []
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


_ELEMENTWISE = frozenset(grammar.TENSOR_UNARY) | frozenset(grammar.SCALAR_UNARY) | {"clamp", "clip", "neg", "reciprocal", "rsqrt"}


def _is_lookup(node: ast.AST, scope: syntax.Scope) -> bool:
    """state["key"] or hp["key"]: a value that exists wherever the function runs."""
    return isinstance(node, ast.Subscript) and scope.type_of(node.value) in (syntax.STATE, syntax.HPS)


def _is_delta(fn: ast.FunctionDef, name: str) -> bool:
    """Is `name` what an optimizer's update returns as its delta? (deleting it drops the lr)"""
    for ret in syntax.returns(fn):
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
