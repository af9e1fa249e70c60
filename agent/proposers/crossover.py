"""Crossover for the offline proposer (mutate.py): for optimizers, graft one parent's init and
HPARAMS onto the other's update or blend the two updates; for losses and schedules, keep both
programs as helpers and combine them.
"""

from __future__ import annotations

import ast
import random

from optforge.agent.proposers import kinds

from . import syntax
from .operators import Mutation


def crossover(a: ast.Module, b: ast.Module, kind: str, rng: random.Random, b_name: str) -> Mutation | None:
    """Cross parent `b` into `a` (in place) with one of the kind's crossover operators."""
    ops = list(kinds.proposal_kind(kind).crossovers)
    rng.shuffle(ops)
    for op in ops:
        trial = syntax.clone(a)
        done = op(trial, syntax.strip_locations(syntax.clone(b)), kind, rng, b_name)
        if done is not None and ast.unparse(trial) != ast.unparse(a):
            a.body[:] = trial.body
            return done
    return None


def graft(a: ast.Module, b: ast.Module, kind: str, rng: random.Random, b_name: str) -> Mutation | None:
    """Keep `a`'s update; take init and HPARAMS from `b`, reconciled to what the update reads:
    every state key it reads is initialised (b's expression where b has the key) and every
    hyperparameter it reads keeps a value (a's where b lacks it)."""
    _merge_module(a, b, {"init", "update", "HPARAMS"})
    update, a_init, b_init = syntax.functions(a)["update"], syntax.functions(a)["init"], syntax.functions(b)["init"]
    a_state, b_state = _init_entries(a_init), _init_entries(b_init)
    a_hp, b_hp = syntax.hparams_dict(a), syntax.hparams_dict(b)
    if a_state is None or b_state is None or a_hp is None or b_hp is None:
        return None
    reads = syntax._lookups(update, update.args.args[2].arg)
    pa, pb = a_init.args.args[0].arg, b_init.args.args[0].arg
    entries: dict[str, ast.expr] = {}
    for key in reads if reads is not None else [*a_state, *b_state]:
        fallback = syntax.clone(a_state.get(key) or syntax.parse_expr(f"torch.zeros_like({pa})"))
        entries[key] = b_state.get(key) or syntax.substitute(fallback, pa, ast.Name(pb, ast.Load()))
    b_init.body[-1] = ast.Return(ast.Dict([ast.Constant(k) for k in entries], list(entries.values())))
    a.body[a.body.index(a_init)] = b_init
    # b's values for what the update reads (lr always: the sweep centres on it), a's where b has none.
    hp_reads = syntax._lookups(update, update.args.args[4].arg)
    wanted = [*_keys(a_hp)] if hp_reads is None else ["lr", *hp_reads]
    theirs, ours = syntax._hp_values(b_hp), syntax._hp_values(a_hp)
    merged = {k: theirs.get(k, ours.get(k)) for k in [*theirs, *ours] if k in wanted}
    a_hp.keys = [ast.Constant(k) for k, v in merged.items() if v is not None]
    a_hp.values = [v for v in merged.values() if v is not None]
    shared = sorted(set(entries) & set(b_state))
    return f"graft init/HPARAMS of {b_name} onto this update (shared state: {', '.join(shared) or 'none'})", "graft"


def blend_updates(a: ast.Module, b: ast.Module, kind: str, rng: random.Random, b_name: str) -> Mutation | None:
    """Run both updates side by side (b's locals, state keys and differing hyperparameters renamed)
    and step along a weighted sum of their deltas; the state is the union of both."""
    _merge_module(a, b, {"init", "update", "HPARAMS"})
    (ua, ia), (ub, ib) = ((syntax.functions(t)["update"], syntax.functions(t)["init"]) for t in (a, b))
    ra, rb, sa, sb = _final_return(ua), _final_return(ub), _init_entries(ia), _init_entries(ib)
    a_hp, b_hp = syntax.hparams_dict(a), syntax.hparams_dict(b)
    if ra is None or rb is None or sa is None or sb is None or a_hp is None or b_hp is None:
        return None
    # b's new state must be a plain literal: `return delta, state` (or `{**state, ...}`) would
    # hand a's old values back over a's new ones.
    if not isinstance(rb.elts[1], ast.Dict) or None in rb.elts[1].keys:
        return None
    names = _adopt_params(a, ua, ub)
    state, hp = ua.args.args[2].arg, ua.args.args[4].arg
    returned = ra.elts[1]
    taken = set(sa) | set(syntax._lookups(ua, state) or ()) | set(_keys(returned) if isinstance(returned, ast.Dict) else ())
    keys = {k: syntax.fresh(k, taken) for k in list(sb) if k in taken}
    _rename_lookups(ub, names[2], keys)
    for literal in (rb.elts[1], ib.body[-1].value):  # type: ignore[attr-defined]
        literal.keys = [ast.Constant(keys.get(k.value, k.value)) for k in literal.keys]  # type: ignore[union-attr]
    _rename_lookups(ub, names[4], _adopt_hparams(a_hp, b_hp))
    w = syntax.fresh("blend", set(_keys(a_hp)))
    syntax.add_hparam(a, w, rng.choice((0.25, 0.5, 0.75)))
    da, db = ast.unparse(ra.elts[0]), ast.unparse(rb.elts[0])
    delta = syntax.parse_expr(f"{hp}[{w!r}] * ({da}) + (1 - {hp}[{w!r}]) * ({db})")
    merged = rb.elts[1]
    merged.keys[:0], merged.values[:0] = _dict_parts(ra.elts[1])
    ua.body = ua.body[:-1] + ub.body[syntax.body_start(ub) : -1] + [ast.Return(ast.Tuple([delta, merged], ast.Load()))]
    for key, value in sb.items():
        value = syntax.substitute(value, ib.args.args[0].arg, ast.Name(ia.args.args[0].arg, ast.Load()))
        syntax.add_dict_entry(ia.body[-1].value, keys.get(key, key), value)  # type: ignore[attr-defined]
    return f"blend deltas with {b_name}'s update (new {w}={ast.unparse(a_hp.values[-1])})", "blend"


def _adopt_hparams(ours: ast.Dict, theirs: ast.Dict) -> dict[str, str]:
    """Add b's hyperparameters to a's HPARAMS; one that a has with another value (lr aside: one
    sweep scales both) gets a new key. Returns b's renamed keys."""
    mine, taken, renamed = syntax._hp_values(ours), set(_keys(ours)), {}
    for key, value in syntax._hp_values(theirs).items():
        if key in mine and (key == "lr" or ast.unparse(value) == ast.unparse(mine[key])):
            continue
        new = syntax.fresh(key, taken) if key in mine else key
        renamed[key] = new
        ours.keys.append(ast.Constant(new))
        ours.values.append(value)
    return {k: v for k, v in renamed.items() if k != v}


def blend_functions(a: ast.Module, b: ast.Module, kind: str, rng: random.Random, b_name: str) -> Mutation | None:
    """Keep both programs as helpers and combine them: a weighted sum of losses; a product, mean
    or hand-over of schedules; a weighted geometric mean of scaling rules, entry by entry."""
    spec = kinds.proposal_kind(kind)
    main = spec.main_function
    taken = syntax.all_names(a) | syntax.all_names(b)
    name_a, name_b = syntax.fresh(f"_{main}_a", taken), syntax.fresh(f"_{main}_b", taken)
    syntax.rename(a, {main: name_a})
    syntax.rename(b, {main: name_b})
    _merge_module(a, b, set())
    args = [x.arg for x in syntax.functions(a)[name_a].args.args]
    call_a, call_b = (f"{n}({', '.join(args)})" for n in (name_a, name_b))
    w = rng.choice((0.25, 0.5, 0.75))
    mode = rng.choice(spec.blends)
    if spec.entries:  # the programs return dicts: call each once, then combine entry by entry
        va, vb = syntax.fresh("rule_a", taken), syntax.fresh("rule_b", taken)
        combined = {"geometric": "{x} ** {w} * {y} ** {v}", "mean": "{w} * {x} + {v} * {y}"}[mode]
        entries = ", ".join(
            f"{k!r}: " + combined.format(x=f"{va}[{k!r}]", y=f"{vb}[{k!r}]", w=w, v=1 - w) for k in spec.entries
        )
        body = f"    {va} = {call_a}\n    {vb} = {call_b}\n    return {{{entries}}}\n"
        a.body.append(ast.parse(f"def {main}({', '.join(args)}):\n{body}").body[0])
        how = "weighted geometric mean" if mode == "geometric" else "weighted mean"
        return f"combine with {b_name}: {how} ({w}) of each entry", "blend"
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


def _keys(d: ast.Dict) -> list[str]:
    return [k.value for k in d.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]


def _init_entries(fn: ast.FunctionDef) -> dict[str, ast.expr] | None:
    """key -> initial value, when init ends in its only return of a dict literal with str keys."""
    last = fn.body[-1]
    if len(syntax.returns(fn)) != 1 or not (isinstance(last, ast.Return) and isinstance(last.value, ast.Dict)):
        return None
    keys = _keys(last.value)
    return dict(zip(keys, last.value.values, strict=True)) if len(keys) == len(last.value.keys) else None


def _final_return(fn: ast.FunctionDef) -> ast.Tuple | None:
    """The (delta, new_state) tuple when the function's only return is its last statement."""
    last = fn.body[-1]
    if len(syntax.returns(fn)) == 1 and isinstance(last, ast.Return) and isinstance(last.value, ast.Tuple):
        return last.value if len(last.value.elts) == 2 else None
    return None


def _rename_lookups(fn: ast.FunctionDef, name: str, mapping: dict[str, str]) -> None:
    parents = syntax._parents(fn)
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and node.id == name:
            up = parents.get(node)
            key = syntax._lookup_key(up, parents.get(up) if up else None)
            if key in mapping:
                const = up.slice if isinstance(up, ast.Subscript) else parents[up].args[0]  # type: ignore[attr-defined,index]
                const.value = mapping[key]  # type: ignore[union-attr]


def _adopt_params(a: ast.Module, ua: ast.FunctionDef, ub: ast.FunctionDef) -> list[str]:
    """Give `ub` the parameter names of `ua` and rename its locals that would clash with `a`.

    A parameter that either update reassigns (`grad = ...`) reaches b through a copy taken at the
    start of the blended update, so neither program sees the other's rewrite of it. Returns the
    names b's body now uses for its parameters, in order."""
    params = {pb.arg: pa.arg for pb, pa in zip(ub.args.args, ua.args.args, strict=True)}
    ours = syntax.all_names(ua) | set(_bindings(a)) | set(params.values())
    taken = syntax.all_names(a) | syntax.all_names(ub)
    stored_a, stored_b = (_stored(fn) for fn in (ua, ub))
    mapping, copies = dict(params), []
    for pb, pa in params.items():
        if pb in stored_b or pa in stored_a:
            mapping[pb] = syntax.fresh(pa, taken)
            copies += syntax.parse_statements(f"{mapping[pb]} = {pa}")
    mapping.update({n: syntax.fresh(n, taken) for n in sorted(stored_b - set(params)) if n in ours})
    syntax.rename(ub, mapping)
    at = syntax.body_start(ua)
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
    taken = syntax.all_names(a) | syntax.all_names(b)
    bound = set(ours) | set(syntax.module_aliases(a))
    clash = {n: syntax.fresh(n, taken) for n, s in theirs.items() if n not in skip and n in bound and (n not in ours or ast.unparse(ours[n]) != ast.unparse(s))}
    syntax.rename(b, clash)
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
