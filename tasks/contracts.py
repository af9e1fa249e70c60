"""Candidate contracts: what a candidate module must define, a static check, and a loader.

A candidate is one self-contained Python module (DESIGN.md, "Candidate contracts"):

    optimizer:  HPARAMS = {"lr": ..., ...}; init(param) -> state; update(grad, param, state, step, hp)
                -> (delta, new_state); the caller applies param += delta; step counts from 1.
    loss:       loss(logits, targets) -> scalar     (logits [B, C] float, targets [B] long)
    schedule:   schedule(step, total_steps) -> float multiplier on the base learning rate
    preference_loss: loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                reference_rejected_logps, beta) -> per-pair losses [B]   (DiscoPOP's signature)
    scaling_rule: scale(width, base_width, group, base) -> {"lr": float, "weight_decay": float}
                (group: "embedding", "hidden", "output" or "vector"; base: that group's values
                tuned at base_width)

Everything else about a kind lives in its own module, tasks/kinds/<kind>.py. The contracts are one
table here, not there, for one reason: this module travels, verbatim, inside every exported file
(archive/export.py), which must run with nothing but torch, so what `load_candidate` needs has to be
defined in this module.

The static check is an early filter that turns common mistakes into one-line, actionable messages
(they become LLM feedback). It is NOT the security boundary: that is the sandbox.
"""

from __future__ import annotations

import ast
import hashlib
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch

Kind = Literal["optimizer", "loss", "schedule", "preference_loss", "scaling_rule"]


@dataclass(frozen=True)
class Contract:
    """What a module of one kind must define: functions (name -> positional parameters) and, when
    `hparams`, a literal HPARAMS dict of finite numbers with a positive 'lr'."""

    functions: Mapping[str, int]
    hparams: bool = False


CONTRACTS: dict[str, Contract] = {
    "optimizer": Contract({"init": 1, "update": 5}, hparams=True),
    "loss": Contract({"loss": 2}),
    "schedule": Contract({"schedule": 2}),
    "preference_loss": Contract({"loss": 5}),
    "scaling_rule": Contract({"scale": 4}),
}
KINDS: tuple[Kind, ...] = get_args(Kind)
assert tuple(CONTRACTS) == KINDS, "every kind has a contract, in the order of Kind"


class UnknownKind(ValueError):
    """A kind that no module defines: one line that names the kinds there are."""

    def __init__(self, kind: object):
        super().__init__(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")


def contract(kind: str) -> Contract:
    """The contract of `kind`; UnknownKind (one line) for a kind that does not exist."""
    if kind not in CONTRACTS:
        raise UnknownKind(kind)
    return CONTRACTS[kind]

ALLOWED_IMPORTS = frozenset({"math", "torch", "torch.nn.functional"})

# Builtins that reach outside the pure-function contract (files, dynamic code, introspection).
FORBIDDEN_NAMES = frozenset(
    {
        "open",
        "exec",
        "eval",
        "compile",
        "__import__",
        "globals",
        "locals",
        "vars",
        "getattr",
        "setattr",
        "delattr",
        "input",
        "breakpoint",
        "memoryview",
        "exit",
        "quit",
        "help",
    }
)

# Sizes measured on the bundled baselines (the largest, normuon.py, is ~4.8 kB); 20 kB leaves room for
# real ideas while stopping a proposer from pasting a library.
MAX_SOURCE_BYTES = 20_000


class ContractError(ValueError):
    """A candidate does not satisfy its contract. `errors` holds one actionable line per problem."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


def check_source(source: str, kind: str) -> list[str]:
    """Return the contract violations of `source` for `kind`, one line each; empty means it passes."""
    if kind not in CONTRACTS:
        return [str(UnknownKind(kind))]
    if len(source.encode()) > MAX_SOURCE_BYTES:
        return [f"source is {len(source.encode())} bytes: keep the module under {MAX_SOURCE_BYTES}"]
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [f"syntax error on line {exc.lineno}: {exc.msg}"]
    errors = _check_imports_and_names(tree)
    errors += _check_required_functions(tree, CONTRACTS[kind].functions)
    if CONTRACTS[kind].hparams:
        errors += _check_hparams(tree)
    return errors


def _check_imports_and_names(tree: ast.Module) -> list[str]:
    errors = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in ALLOWED_IMPORTS:
                    errors.append(_import_error(alias.name, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level or module not in ALLOWED_IMPORTS:
                errors.append(_import_error(module or ".", node.lineno))
        elif isinstance(node, ast.Attribute) and node.attr.startswith("__"):
            errors.append(f"line {node.lineno}: dunder attribute '{node.attr}' is not allowed")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            errors.append(f"line {node.lineno}: '{node.id}' is not allowed in a candidate")
        elif isinstance(node, ast.Name) and node.id.startswith("__"):
            errors.append(f"line {node.lineno}: dunder name '{node.id}' is not allowed")
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            errors.append(
                f"line {node.lineno}: global/nonlocal state is not allowed; keep state in the returned dict"
            )
    return errors


def _import_error(name: str, lineno: int) -> str:
    allowed = ", ".join(sorted(ALLOWED_IMPORTS))
    return f"line {lineno}: import of '{name}' is not allowed; use only {allowed}"


def _check_required_functions(tree: ast.Module, functions: Mapping[str, int]) -> list[str]:
    defined = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    errors = []
    for name, arity in functions.items():
        fn = defined.get(name)
        if fn is None:
            errors.append(f"missing required function '{name}' taking {arity} arguments")
        elif not _takes(fn, arity):
            positional = len(fn.args.posonlyargs) + len(fn.args.args)
            errors.append(f"'{name}' must take {arity} positional arguments, it takes {positional}")
    return errors


def _takes(fn: ast.FunctionDef, arity: int) -> bool:
    """Whether `fn` can be called with `arity` positional arguments."""
    positional = len(fn.args.posonlyargs) + len(fn.args.args)
    required = positional - len(fn.args.defaults)
    return fn.args.vararg is not None or required <= arity <= positional


def _check_hparams(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "HPARAMS" for t in node.targets
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return ["HPARAMS must be a literal dict of numbers, e.g. {'lr': 1e-3}"]
            return _hparams_errors(value)
    return ["missing module-level HPARAMS dict with at least 'lr', e.g. HPARAMS = {'lr': 1e-3}"]


def _hparams_errors(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["HPARAMS must be a dict, e.g. {'lr': 1e-3}"]
    errors = []
    for key, val in value.items():
        if not isinstance(key, str):
            errors.append(f"HPARAMS key {key!r} must be a string")
        elif isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val):
            errors.append(f"HPARAMS['{key}'] must be a finite number, got {val!r}")
    lr = value.get("lr")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        errors.append("HPARAMS needs a positive 'lr' (the base learning rate)")
    return errors


@dataclass(frozen=True)
class Candidate:
    """A checked, loaded candidate: its source, kind and the functions it defines."""

    kind: Kind
    source: str
    name: str
    namespace: types.MappingProxyType[str, Any]

    @property
    def id(self) -> str:
        return source_hash(self.source)

    @property
    def hparams(self) -> dict[str, float]:
        """Default hyperparameters (a fresh copy; optimizer kind only, empty otherwise)."""
        return {k: float(v) for k, v in self.namespace.get("HPARAMS", {}).items()}

    def fn(self, name: str) -> Any:
        return self.namespace[name]


def source_hash(source: str) -> str:
    """Content hash of a candidate's source, the candidate's identity (hex sha256)."""
    return hashlib.sha256(source.encode()).hexdigest()


def load_candidate(source: str, kind: str, name: str = "candidate") -> Candidate:
    """Check `source` against the contract of `kind` and execute it into a fresh namespace.

    This runs the module's top-level code: call it only inside the sandbox for untrusted code, or on
    code you trust (baselines, your own files). Raises ContractError with one line per problem.
    """
    errors = check_source(source, kind)
    if errors:
        raise ContractError(errors)
    namespace: dict[str, Any] = {
        "__name__": f"optforge_candidate_{name}",
        "torch": torch,
        "math": math,
    }
    try:
        exec(compile(source, f"<candidate {name}>", "exec"), namespace)
    except Exception as exc:  # the candidate's own failure, reported as a contract error
        raise ContractError([f"module failed to load: {type(exc).__name__}: {exc}"]) from exc
    return Candidate(
        kind=kind,  # type: ignore[arg-type]  # check_source has verified it is one of KINDS
        source=source,
        name=name,
        namespace=types.MappingProxyType(namespace),
    )


def declared_hparams(source: str) -> dict[str, float]:
    """The literal HPARAMS of an optimizer source, read without executing it ({} if absent or bad).

    The trusted side uses this to centre the learning-rate sweep on a candidate's own default.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "HPARAMS" for t in node.targets
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return {}
            if isinstance(value, dict) and not _hparams_errors(value):
                return {str(k): float(v) for k, v in value.items()}
    return {}


def infer_kind(source: str) -> Kind | None:
    """Guess a candidate's kind from the functions it defines and how many arguments they take
    (None when ambiguous or unknown): two kinds may share a function name, not its signature."""
    try:
        defined = {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
    except SyntaxError:
        return None
    matches = [
        k for k in KINDS
        if all(name in defined and _takes(defined[name], arity) for name, arity in CONTRACTS[k].functions.items())
    ]
    return matches[0] if len(matches) == 1 else None
