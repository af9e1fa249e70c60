"""The offline proposer: mutations on a candidate's syntax tree, in the spirit of the Lion program
search (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", section 2).

Operators (operators.py): scale a constant, perturb a hyperparameter, swap a unary function for a
compatible one, swap the operands of a non-commutative operator, swap an operator, insert a term
of the grammar (grammar.py), delete a statement (rewiring its uses), and, given two parents, cross
them over (crossover.py). Every child passes `check_source`, differs from its parents and depends
only on the given rng.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Mapping

from optforge.agent.proposers import kinds
from optforge.tasks.contracts import KINDS, UnknownKind, check_source

from . import syntax
from .base import Proposal, ProposalFailed, ProposalRequest
from .crossover import crossover
from .operators import DEFAULT_WEIGHTS, OPERATORS, Mutation

MAX_NAME = 48


# ------------------------------------------------------------------------------ simplification


def simplify(tree: ast.Module, kind: str) -> None:
    """Remove what cannot matter, as the Lion search does before deduplicating: assignments
    nothing reads and, for optimizers, state entries and hyperparameters the update never reads.
    Keeps lineages from bloating and the state-memory descriptor honest."""
    changed = True
    while changed:  # each removal can leave more behind it unread
        prune = kinds.proposal_kind(kind).prune
        if prune is not None:
            prune(tree)
        changed = any(_drop_dead_assignment(fn) for fn in syntax.functions(tree).values())


def prune_optimizer(tree: ast.Module) -> None:
    """Drop the state entries and hyperparameters an optimizer's update never reads."""
    fns = syntax.functions(tree)
    update, init, hparams = fns.get("update"), fns.get("init"), syntax.hparams_dict(tree)
    if update is None or init is None or hparams is None:
        return
    reads = syntax._lookups(update, update.args.args[2].arg)
    if reads is not None:
        literals = [r.value.elts[1] for r in syntax.returns(update) if isinstance(r.value, ast.Tuple) and len(r.value.elts) == 2]
        for literal in literals + [r.value for r in syntax.returns(init)]:
            if isinstance(literal, ast.Dict):
                _keep_keys(literal, set(reads))
    hp_reads = syntax._lookups(update, update.args.args[4].arg)
    if hp_reads is not None:
        _keep_keys(hparams, {"lr", *hp_reads})  # lr stays: the sweep is centred on it


def _drop_dead_assignment(fn: ast.FunctionDef) -> bool:
    """Remove the top-level assignments to one name that is read nowhere but in its own updates
    (`x = ...; x = x + 1`, x never used); True if one was removed."""
    assigned = [s for s in fn.body if syntax._assigned_name(s)]
    loads = [n for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    for name in dict.fromkeys(syntax._assigned_name(s) for s in assigned):
        own = [s for s in assigned if syntax._assigned_name(s) == name]
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
        if kind not in KINDS:
            raise ProposalFailed(str(UnknownKind(kind)))
        if not request.parents:
            raise ProposalFailed("mutate needs at least one parent")
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
        tree, applied = syntax.clone(trees[0]), []
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
            trial = syntax.clone(tree)
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
    syntax.ensure_imports(plain)
    return ast.unparse(plain)


def _render(tree: ast.Module, name: str, parents: list[str]) -> str:
    """Readable source with a one-line provenance docstring (the parent's would now be wrong)."""
    doc = ast.Expr(ast.Constant(f"{name}: mutated from {' x '.join(parents)} by optforge's mutate proposer."))
    module = ast.Module([doc] + [s for s in tree.body if not _is_docstring(s)], type_ignores=[])
    syntax.ensure_imports(module)
    return ast.unparse(ast.fix_missing_locations(module)) + "\n"


def child_name(parent: str, tags: list[str]) -> str:
    """`<parent>_<tags>`, at most MAX_NAME characters, the parent's tail cut first."""
    base = re.sub(r"[^a-z0-9_]+", "_", parent.lower()).strip("_") or "candidate"
    suffix = re.sub(r"[^a-z0-9_]+", "_", "_".join(tags).lower()).strip("_") or "mut"
    base = base[: max(8, MAX_NAME - len(suffix) - 1)].rstrip("_")
    return f"{base}_{suffix}"[:MAX_NAME].rstrip("_")


__all__ = ["MutationProposer", "child_name", "simplify"]
