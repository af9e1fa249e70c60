"""What the mutation proposer knows about a candidate program's syntax: a shallow type analysis
and the small helpers that read and edit a candidate's syntax tree.

The type analysis is deliberately small: it only has to keep a mutation from putting a tensor
function on a Python float, or any arithmetic on the integer class targets of a loss. Everything
it cannot tell is typed None, and mutations skip None.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar, cast

_Node = TypeVar("_Node", bound=ast.AST)
TENSOR, SCALAR, INDEX, STATE, HPS = "tensor", "scalar", "index", "state", "hparams"
# A string argument (a scaling rule's group name): compared, never computed with, so no operator
# touches it.
LABEL = "label"

# Tensor methods whose result is not a tensor.
_NON_TENSOR_METHODS = frozenset({"item", "tolist", "size", "dim", "numel", "long", "int", "bool"})
_SCALAR_BUILTINS = frozenset({"float", "int", "round", "max", "min", "abs", "sum"})


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def module_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> the module it is bound to ('torch', 'math', 'torch.nn.functional', ...)."""
    aliases = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                aliases[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


@dataclass
class Scope:
    """Types of the names visible in one function (module constants, parameters, locals)."""

    aliases: dict[str, str]
    env: dict[str, str | None]

    def module_of(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.module_of(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def type_of(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant):
            return SCALAR if is_number(node.value) else None
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.Subscript):
            return {STATE: TENSOR, HPS: SCALAR, TENSOR: TENSOR}.get(self.type_of(node.value) or "")
        if isinstance(node, ast.BinOp):
            kinds = {self.type_of(node.left), self.type_of(node.right)}
            if kinds <= {TENSOR, SCALAR}:
                return TENSOR if TENSOR in kinds else SCALAR
            return None
        if isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not):
            return self.type_of(node.operand)
        if isinstance(node, ast.IfExp):
            body = self.type_of(node.body)
            return body if body == self.type_of(node.orelse) else None
        if isinstance(node, ast.Call):
            return self._call_type(node)
        if isinstance(node, ast.Attribute):
            if self.module_of(node.value) == "math":
                return SCALAR
            return TENSOR if node.attr == "values" and self.type_of(node.value) == TENSOR else None
        return None

    def _call_type(self, node: ast.Call) -> str | None:
        func = node.func
        if isinstance(func, ast.Attribute):
            module = self.module_of(func.value)
            if module is not None:
                return SCALAR if module == "math" else TENSOR if module.startswith("torch") else None
            receiver = self.type_of(func.value)
            if receiver == TENSOR and func.attr not in _NON_TENSOR_METHODS:
                return TENSOR
            return INDEX if receiver == INDEX else None
        if isinstance(func, ast.Name) and func.id in _SCALAR_BUILTINS and func.id not in self.env:
            kinds = {self.type_of(arg) for arg in node.args}
            if func.id == "abs" and kinds == {TENSOR}:
                return TENSOR
            return SCALAR if kinds == {SCALAR} else None
        return None


def function_scope(tree: ast.Module, fn: ast.FunctionDef, kind: str) -> Scope:
    """Types for `fn`; a helper with the main function's arity gets the main function's types."""
    scope = Scope(module_aliases(tree), {})
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and is_number(node.value.value):
            scope.env.update({t.id: SCALAR for t in node.targets if isinstance(t, ast.Name)})
    # Imported here: the kind modules build their grammars on this module's type names.
    from optforge.agent.proposers import kinds

    spec = kinds.proposal_kind(kind)
    main = spec.param_types[spec.main_function]
    types = spec.param_types.get(fn.name, main if len(fn.args.args) == len(main) else ())
    names = [a.arg for a in fn.args.args]
    scope.env.update(dict(zip(names, types, strict=False)))  # a helper may have no types
    for stmt in statements(fn.body):
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            for target, value in _pairs(stmt.targets[0], stmt.value):
                _bind(scope, target, value)
    return scope


def _pairs(target: ast.expr, value: ast.expr) -> list[tuple[ast.expr, ast.expr | None]]:
    if isinstance(target, ast.Tuple):
        if isinstance(value, ast.Tuple) and len(value.elts) == len(target.elts):
            return list(zip(target.elts, value.elts, strict=True))
        return [(t, None) for t in target.elts]
    return [(target, value)]


def _bind(scope: Scope, target: ast.expr, value: ast.expr | None) -> None:
    if not isinstance(target, ast.Name):
        return
    kind = scope.type_of(value) if value is not None else None
    # A name assigned values of different types is typed None: mutations leave it alone.
    scope.env[target.id] = kind if scope.env.get(target.id, kind) == kind else None


def statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement in `body`, nested blocks included, in source order (not into nested defs)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, name, None)
            if isinstance(inner, list):
                yield from statements(inner)


def returns(fn: ast.FunctionDef) -> list[ast.Return]:
    return [s for s in statements(fn.body) if isinstance(s, ast.Return)]


def functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def body_start(fn: ast.FunctionDef) -> int:
    """Index of the first statement after a docstring."""
    first = fn.body[0]
    is_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    return 1 if is_doc and isinstance(first.value.value, str) else 0  # type: ignore[attr-defined]


def all_names(tree: ast.AST) -> set[str]:
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    return names | {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def string_constants(tree: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def fresh(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`, ... whichever is not taken yet; the result is then taken."""
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def hparams_dict(tree: ast.Module) -> ast.Dict | None:
    for node in tree.body:
        is_hparams = any(isinstance(t, ast.Name) and t.id == "HPARAMS" for t in getattr(node, "targets", ()))
        if is_hparams and isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            return node.value
    return None


def hparam_keys(tree: ast.Module) -> set[str]:
    found = hparams_dict(tree)
    keys = found.keys if found else []
    return {k.value for k in keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}


def add_hparam(tree: ast.Module, key: str, value: float) -> None:
    found = hparams_dict(tree)
    if found is None:
        raise ValueError("the candidate has no literal HPARAMS dict")
    found.keys.append(ast.Constant(key))
    found.values.append(ast.Constant(value))


def add_dict_entry(expr: ast.expr, key: str, value: ast.expr) -> ast.expr:
    """`expr` with `key: value` added: in place for a dict literal, else `{**expr, key: value}`."""
    if isinstance(expr, ast.Dict):
        expr.keys.append(ast.Constant(key))
        expr.values.append(value)
        return expr
    return ast.Dict(keys=[None, ast.Constant(key)], values=[expr, value])


def clone(node: _Node) -> _Node:
    """A deep copy of a syntax tree, ~3x faster than copy.deepcopy (measured on adam.py)."""
    new = type(node).__new__(type(node))
    new.__dict__.update({k: _clone_value(v) for k, v in node.__dict__.items()})
    return new


def _clone_value(value: object) -> object:
    if isinstance(value, ast.AST):
        return clone(value)
    return [_clone_value(v) for v in value] if isinstance(value, list) else value


def parse_expr(text: str) -> ast.expr:
    return strip_locations(ast.parse(text, mode="eval").body)


def parse_statements(text: str) -> list[ast.stmt]:
    return [strip_locations(s) for s in ast.parse(text).body]


_LOCATIONS = ("lineno", "end_lineno", "col_offset", "end_col_offset")


def strip_locations(node: _Node) -> _Node:
    """Forget where `node` was parsed: its line numbers would name the wrong lines in a child."""
    for sub in ast.walk(node):
        for attr in _LOCATIONS:
            if hasattr(sub, attr):
                setattr(sub, attr, 0)  # 0, not deleted: ast.unparse reads a def's lineno
    return node


def substitute(node: _Node, old: str, new: ast.expr) -> _Node:
    """Replace every load of the name `old` under `node` by a copy of `new` (in place; `node`
    itself is replaced, and returned, when it is that name)."""

    class _Sub(ast.NodeTransformer):
        def visit_Name(self, name: ast.Name) -> ast.AST:
            return clone(new) if name.id == old and isinstance(name.ctx, ast.Load) else name

    return cast(_Node, _Sub().visit(node))


def rename(node: ast.AST, mapping: dict[str, str]) -> None:
    """Rename names, parameters and function definitions under `node` (in place)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in mapping:
            sub.id = mapping[sub.id]
        elif isinstance(sub, ast.arg) and sub.arg in mapping:
            sub.arg = mapping[sub.arg]
        elif isinstance(sub, ast.FunctionDef) and sub.name in mapping:
            sub.name = mapping[sub.name]


def ensure_imports(tree: ast.Module) -> None:
    """Import `torch` / `math` when the code uses them and nothing binds them (inserted terms)."""
    bound = set(module_aliases(tree)) | {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }
    used = {n.value.id for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    at = 1 if tree.body and isinstance(tree.body[0], ast.Expr) else 0
    for module in sorted({"torch", "math"} & used - bound, reverse=True):
        tree.body.insert(at, ast.Import(names=[ast.alias(name=module)]))


def _assigned_name(stmt: ast.stmt) -> str | None:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id
    return None


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _hp_values(d: ast.Dict) -> dict[str, ast.expr]:
    pairs = zip(d.keys, d.values, strict=True)
    return {k.value: v for k, v in pairs if isinstance(k, ast.Constant) and isinstance(k.value, str)}


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
