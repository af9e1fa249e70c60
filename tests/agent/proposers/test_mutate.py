"""The mutation proposer: valid, new, reproducible children; each operator does what it says."""

from __future__ import annotations

import ast
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from optforge.agent.proposers import syntax
from optforge.agent.proposers.base import ParentInfo, Proposal, ProposalFailed, ProposalRequest
from optforge.agent.proposers.crossover import blend_functions, blend_updates, graft
from optforge.agent.proposers.kinds import proposal_kind
from optforge.agent.proposers.mutate import MAX_NAME, MutationProposer, child_name, simplify
from optforge.agent.proposers.operators import OPERATORS
from optforge.tasks.adapters import SCALING_GROUPS, CandidatePreferenceLoss, CandidateScalingRule
from optforge.tasks.baselines import baseline_names, baseline_source
from optforge.tasks.contracts import KINDS, check_source, load_candidate
from optforge.tasks.kinds.scaling_rule import base_values

BASELINES = [(kind, name) for kind in KINDS for name in baseline_names(kind)]
SEEDS_PER_PARENT = 8


def parent(kind: str, name: str) -> ParentInfo:
    return ParentInfo(id=f"id-{name}", name=name, source=baseline_source(kind, name), score=None, status="ok")


def request(kind: str, *names: str) -> ProposalRequest:
    return ProposalRequest(kind=kind, parents=tuple(parent(kind, n) for n in names))


def normal(source: str) -> str:
    tree = ast.parse(source)
    tree.body = [s for s in tree.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    syntax.ensure_imports(tree)
    return ast.unparse(tree)


def only(operator: str, **options: object) -> MutationProposer:
    return MutationProposer(weights={operator: 1.0}, max_mutations=1, **options)  # type: ignore[arg-type]


def run_candidate(source: str, kind: str) -> None:
    """Load a child and exercise it briefly; raises whatever the child raises."""
    candidate = load_candidate(source, kind)
    if kind == "optimizer":
        param, state = torch.randn(4, 3), candidate.fn("init")(torch.randn(4, 3))
        for step in range(1, 4):
            delta, state = candidate.fn("update")(torch.randn(4, 3), param.clone(), state, step, candidate.hparams)
            assert isinstance(delta, torch.Tensor) and delta.shape == param.shape
            param = param + delta
    elif kind == "loss":
        logits = torch.randn(8, 5, requires_grad=True)
        value = candidate.fn("loss")(logits, torch.arange(8) % 5)
        assert value.dim() == 0
        value.backward()
    elif kind == "preference_loss":
        policy = (torch.randn(8) - 60).requires_grad_(True), (torch.randn(8) - 60).requires_grad_(True)
        reference = policy[0].detach() + torch.randn(8), policy[1].detach() + torch.randn(8)
        CandidatePreferenceLoss(candidate)(*policy, *reference, 0.5).mean().backward()
    elif kind == "scaling_rule":  # guarded values (CandidateRuntimeError otherwise) where it trains
        rule, base = CandidateScalingRule(candidate), base_values()
        for width in (32, 64, 128, 256, 512):
            for group in SCALING_GROUPS:
                rule(width, 32, group, base[group])
    else:
        for step in range(0, 100, 9):
            float(candidate.fn("schedule")(step, 100))


# --------------------------------------------------------------------------- proposer, end to end


@pytest.mark.parametrize(("kind", "name"), BASELINES)
def test_children_of_every_baseline_pass_the_contract_and_differ_from_it(kind: str, name: str) -> None:
    proposer, req = MutationProposer(), request(kind, name)
    for seed in range(SEEDS_PER_PARENT):
        child = proposer.propose(req, random.Random(seed))
        assert check_source(child.source, kind) == [], child.thought
        assert normal(child.source) != normal(req.parents[0].source)
        assert child.proposer == "mutate" and child.parent_ids == (f"id-{name}",)
        assert child.name.startswith(name[:8]) and len(child.name) <= MAX_NAME
        assert child.thought and "\n" not in child.thought
        assert ast.get_docstring(ast.parse(child.source)).count("\n") == 0  # type: ignore[union-attr]


def test_the_same_seed_gives_the_same_child_and_seeds_give_variety() -> None:
    req = request("optimizer", "adam", "lion")
    first = [MutationProposer().propose(req, random.Random(s)) for s in range(12)]
    again = [MutationProposer().propose(req, random.Random(s)) for s in range(12)]
    assert first == again
    assert len({p.source for p in first}) >= 9


def test_number_of_mutations_is_configurable() -> None:
    req = request("optimizer", "adamw")
    one = [MutationProposer(max_mutations=1).propose(req, random.Random(s)) for s in range(10)]
    assert all(p.thought and p.thought.count("; ") == 0 for p in one)
    three = [MutationProposer(min_mutations=3, max_mutations=3).propose(req, random.Random(s)) for s in range(10)]
    assert sum(p.thought.count("; ") == 2 for p in three if p.thought) >= 8


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(KINDS), crossover=st.booleans())
def test_children_are_valid_for_any_seed(seed: int, kind: str, crossover: bool) -> None:
    rng = random.Random(seed)
    names = baseline_names(kind)
    picked = [rng.choice(names) for _ in range(2 if crossover else 1)]
    child = MutationProposer().propose(request(kind, *picked), rng)
    assert check_source(child.source, kind) == []
    assert normal(child.source) not in {normal(baseline_source(kind, n)) for n in picked}


@pytest.mark.parametrize("kind", KINDS)
def test_most_children_run(kind: str) -> None:
    """Validity is static; this checks that most children also run (>= 70% is the target; the
    rest are the kind of broken a tier-0 check reports as a status)."""
    names, ran, total = baseline_names(kind), 0, 60
    for seed in range(total):
        rng = random.Random(seed)
        picked = [rng.choice(names) for _ in range(1 + seed % 2)]
        child = MutationProposer().propose(request(kind, *picked), rng)
        try:
            run_candidate(child.source, kind)
            ran += 1
        except Exception:  # a child's own failure: counted, not our bug
            pass
    assert ran / total >= 0.7


def test_new_state_keys_are_initialised_in_init() -> None:
    for name in baseline_names("optimizer"):
        for seed in range(8):
            child = MutationProposer().propose(request("optimizer", name), random.Random(seed))
            fns = syntax.functions(ast.parse(child.source))
            state = fns["update"].args.args[2].arg
            read = {
                n.slice.value for n in ast.walk(fns["update"])
                if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and n.value.id == state
                and isinstance(n.slice, ast.Constant)
            }
            init_return = fns["init"].body[-1]
            assert isinstance(init_return, ast.Return) and isinstance(init_return.value, ast.Dict)
            initialised = {k.value for k in init_return.value.keys if isinstance(k, ast.Constant)}
            assert read <= initialised, child.source


# ------------------------------------------------------------------------------- failing cleanly

DEGENERATE = [
    ("optimizer", "def update(:\n"),  # does not parse
    ("optimizer", baseline_source("loss", "cross_entropy")),  # wrong kind
    ("schedule", "import os\ndef schedule(step, total_steps):\n    return 1.0\n"),  # breaks the contract
]


@pytest.mark.parametrize(("kind", "source"), DEGENERATE)
def test_a_parent_that_breaks_the_contract_fails_cleanly(kind: str, source: str) -> None:
    req = ProposalRequest(kind=kind, parents=(ParentInfo("x", "bad", source, None, "error"),))
    with pytest.raises(ProposalFailed, match="not a valid"):
        MutationProposer().propose(req, random.Random(0))


def test_nothing_to_mutate_raises_proposal_failed() -> None:
    # sgd calls no unary function, so a swap-only proposer has nothing to work with.
    with pytest.raises(ProposalFailed, match="no valid mutation"):
        only("swap_unary").propose(request("optimizer", "sgd"), random.Random(0))
    with pytest.raises(ProposalFailed, match="at least one parent"):
        MutationProposer().propose(ProposalRequest(kind="loss", parents=()), random.Random(0))


def test_constructor_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="unknown mutation operator"):
        MutationProposer(weights={"teleport": 1.0})
    with pytest.raises(ValueError, match="min_mutations"):
        MutationProposer(min_mutations=3, max_mutations=2)


def test_children_never_outgrow_the_size_limit_or_a_larger_parent() -> None:
    req = request("optimizer", "adam", "lion")
    for seed in range(10):
        child = MutationProposer(max_source_bytes=0).propose(req, random.Random(seed))
        assert len(child.source.encode()) <= len(baseline_source("optimizer", "adam").encode())


def test_child_names_are_bounded_and_derived_from_the_parent() -> None:
    assert child_name("adam", ["tanh"]) == "adam_tanh"
    long = child_name("adam_" + "_".join(["ema"] * 30), ["sign", "clip"])
    assert long.startswith("adam_ema") and long.endswith("sign_clip") and len(long) <= MAX_NAME


# ------------------------------------------------------------------- each operator in isolation


def children(operator: str, kind: str, source: str, n: int = 20) -> list[Proposal]:
    req = ProposalRequest(kind=kind, parents=(ParentInfo("p", "p", source, None, "ok"),))
    return [only(operator).propose(req, random.Random(s)) for s in range(n)]


def test_scale_constant_scales_a_value_but_never_an_axis() -> None:
    source = "def loss(logits, targets):\n    return -logits.log_softmax(dim=-1).gather(-1, targets.unsqueeze(-1)).mean() * 3.0\n"
    for child in children("scale_constant", "loss", source):
        body = ast.unparse(syntax.functions(ast.parse(child.source))["loss"])
        assert "dim=-1" in body and "gather(-1," in body and "unsqueeze(-1)" in body
        assert child.thought and child.thought.startswith("scale 3.0 -> ")
        assert any(f"* {v}" in body for v in (4.5, 2.0, 6.0, 1.5, 30.0, 0.3))


def test_perturb_hparam_keeps_lr_and_stays_in_range() -> None:
    for child in children("perturb_hparam", "optimizer", baseline_source("optimizer", "adam"), 40):
        hp = load_candidate(child.source, "optimizer").hparams
        assert hp["lr"] == 1e-3
        assert 0 <= hp["beta1"] < 1 and 0 <= hp["beta2"] < 1 and 0 < hp["eps"] <= 1e-2 and hp["weight_decay"] >= 0
    assert any("weight_decay 0 ->" in (c.thought or "") for c in children("perturb_hparam", "optimizer", baseline_source("optimizer", "sgd"), 40))


def test_swap_unary_only_swaps_where_types_fit() -> None:
    # sign(c) steers the step direction: only other sign-keeping functions may replace it.
    for child in children("swap_unary", "optimizer", baseline_source("optimizer", "lion")):
        assert "torch.tanh(c)" in child.source or "torch.atan(c)" in child.source
    # targets is an integer class-index tensor: its .abs() is never swapped; logits' .exp() is.
    source = "def loss(logits, targets):\n    return (logits.exp() + targets.abs()).mean()\n"
    for child in children("swap_unary", "loss", source):
        assert "targets.abs()" in child.source and "logits.exp()" not in child.source
    # a scalar math function becomes another math function (or the builtin abs), never torch's.
    source = "import math\ndef schedule(step, total_steps):\n    return math.cos(step / max(1, total_steps)) + 1\n"
    for child in children("swap_unary", "schedule", source):
        assert "torch" not in child.source and "math.cos" not in child.source


def test_swap_operands_swaps_a_non_commutative_operator() -> None:
    source = "HPARAMS = {'lr': 0.1}\ndef init(p):\n    return {}\ndef update(g, p, s, t, hp):\n    return -hp['lr'] * (g - p) + (g + p), s\n"
    for child in children("swap_operands", "optimizer", source, 5):
        assert "(p - g)" in child.source and "g + p" in child.source


def test_swap_operands_never_makes_a_python_number_divisor_that_can_be_zero() -> None:
    source = "def schedule(step, total_steps):\n    return step / max(1, total_steps)\n"
    with pytest.raises(ProposalFailed):
        only("swap_operands").propose(ProposalRequest("schedule", (ParentInfo("p", "p", source, None, "ok"),)), random.Random(0))


def test_swap_operator_flips_an_operator() -> None:
    source = "def schedule(step, total_steps):\n    return max(0.0, total_steps - step) / total_steps\n"
    changed = {normal(c.source) for c in children("swap_operator", "schedule", source)}
    assert any("total_steps + step" in s for s in changed) and any("min(0.0" in s for s in changed)


@pytest.mark.parametrize("kind", KINDS)
def test_insert_term_adds_statements_or_a_term_from_the_grammar(kind: str) -> None:
    tags = {t.tag for t in proposal_kind(kind).terms}
    for name in baseline_names(kind):
        for child in children("insert_term", kind, baseline_source(kind, name), 6):
            assert child.thought and child.thought.split()[1] in tags
            run_candidate(child.source, kind)


def test_insert_of_an_ema_tracks_new_state_and_a_new_hyperparameter() -> None:
    found = 0
    for child in children("insert_term", "optimizer", baseline_source("optimizer", "sgd"), 80):
        if child.thought and child.thought.startswith("insert ema"):
            found += 1
            candidate = load_candidate(child.source, "optimizer")
            assert "beta_ema" in candidate.hparams
            assert set(candidate.fn("init")(torch.zeros(3))) == {"momentum_buffer", "ema"}
            run_candidate(child.source, "optimizer")
    assert found


def test_delete_statement_rewires_uses_to_an_input() -> None:
    source = baseline_source("optimizer", "sgd")
    for child in children("delete_statement", "optimizer", source):
        update = syntax.functions(ast.parse(child.source))["update"]
        assert len(update.body) <= 2  # one deleted (and maybe one more left dead, then dropped)
        run_candidate(child.source, "optimizer")
    # deleting the warm-up branch of a schedule
    source = baseline_source("schedule", "cosine_warmup")
    thoughts = [c.thought or "" for c in children("delete_statement", "schedule", source, 30)]
    assert any("delete `if step < warmup" in t for t in thoughts)


# ------------------------------------------------------------------------------------- crossover


def trees(kind: str, a: str, b: str) -> tuple[ast.Module, ast.Module]:
    return ast.parse(baseline_source(kind, a)), ast.parse(baseline_source(kind, b))


def test_graft_keeps_the_update_and_takes_init_and_hparams_from_the_other() -> None:
    a, b = trees("optimizer", "lion", "adam")
    assert graft(a, b, "optimizer", random.Random(0), "adam") is not None
    source = ast.unparse(a)
    assert check_source(source, "optimizer") == []
    candidate = load_candidate(source, "optimizer")
    assert "torch.sign" in source  # lion's update
    assert candidate.hparams["lr"] == 1e-3 and candidate.hparams["beta2"] == 0.999  # adam's values
    assert set(candidate.fn("init")(torch.zeros(2))) == {"exp_avg"}  # only what lion's update reads
    run_candidate(source, "optimizer")


def test_blend_runs_both_updates_and_keeps_both_states() -> None:
    a, b = trees("optimizer", "lion", "adam")
    assert blend_updates(a, b, "optimizer", random.Random(0), "adam") is not None
    source = ast.unparse(a)
    assert check_source(source, "optimizer") == []
    assert "torch.sign" in source and "exp_avg_sq" in source
    candidate = load_candidate(source, "optimizer")
    # both use "exp_avg" and "beta2" (with different values): adam's get new keys
    assert set(candidate.fn("init")(torch.zeros(2))) == {"exp_avg", "exp_avg_2", "exp_avg_sq"}
    assert candidate.hparams["beta2"] == 0.99 and candidate.hparams["beta2_2"] == 0.999
    run_candidate(source, "optimizer")


@pytest.mark.parametrize(("kind", "a", "b"), [("loss", "focal", "label_smoothing"), ("schedule", "wsd", "cosine_warmup")])
def test_blend_functions_keeps_both_programs_as_helpers(kind: str, a: str, b: str) -> None:
    ta, tb = trees(kind, a, b)
    assert blend_functions(ta, tb, kind, random.Random(0), b) is not None
    source = ast.unparse(ta)
    assert check_source(source, kind) == []
    fns = syntax.functions(ast.parse(source))
    assert {f"_{kind}_a", f"_{kind}_b", kind} <= set(fns)
    run_candidate(source, kind)


def test_crossover_children_contain_material_from_both_parents() -> None:
    proposer = MutationProposer(crossover_rate=1.0, max_mutations=1)
    for seed in range(10):
        child = proposer.propose(request("optimizer", "lion", "adam"), random.Random(seed))
        assert child.parent_ids == ("id-lion", "id-adam")
        hparams = load_candidate(child.source, "optimizer").hparams
        assert "torch.sign" in child.source  # lion's update
        assert "exp_avg_sq" in child.source or hparams["lr"] == 1e-3  # adam's update or values
        run_candidate(child.source, "optimizer")


def test_a_broken_second_parent_only_costs_the_crossover() -> None:
    req = ProposalRequest("optimizer", (parent("optimizer", "adam"), ParentInfo("x", "bad", "def (", None, "error")))
    child = MutationProposer(crossover_rate=1.0).propose(req, random.Random(0))
    assert check_source(child.source, "optimizer") == []
    assert child.parent_ids == ("id-adam", "x")


def test_blend_gives_each_update_its_own_copy_of_a_reassigned_parameter() -> None:
    # b rewrites `grad` in place; a's delta must still see the original gradient.
    a = ast.parse("HPARAMS = {'lr': 1.0}\ndef init(p):\n    return {}\ndef update(grad, p, s, t, hp):\n    return -hp['lr'] * grad, {}\n")
    b = ast.parse("HPARAMS = {'lr': 1.0}\ndef init(p):\n    return {}\ndef update(g, p, s, t, hp):\n    g = 3 * g\n    return -hp['lr'] * g, {}\n")
    assert blend_updates(a, b, "optimizer", random.Random(0), "b") is not None
    candidate = load_candidate(ast.unparse(a), "optimizer")
    w = candidate.hparams["blend"]
    delta, _ = candidate.fn("update")(torch.ones(2), torch.zeros(2), {}, 1, candidate.hparams)
    assert torch.allclose(delta, torch.full((2,), -(w * 1 + (1 - w) * 3)))


def test_simplify_drops_dead_code_unread_state_and_unused_hyperparameters() -> None:
    source = (
        "import torch\nHPARAMS = {'lr': 0.1, 'beta': 0.9, 'unused': 1.0}\n"
        "def init(p):\n    return {'m': torch.zeros_like(p), 'dead': torch.zeros_like(p)}\n"
        "def update(g, p, s, t, hp):\n"
        "    junk = g * 2\n    junk = junk + 1\n    p.mul_(1.0)\n    kept = p.add_(0.0)\n"
        "    m = hp['beta'] * s['m'] + g\n    return -hp['lr'] * m, {'m': m, 'dead': junk}\n"
    )
    tree = ast.parse(source)
    simplify(tree, "optimizer")
    text = ast.unparse(tree)
    assert "junk" not in text and "'dead'" not in text and "'unused'" not in text
    assert "kept = p.add_(0.0)" in text  # an in-place call is not dead code
    assert load_candidate(text, "optimizer").hparams == {"lr": 0.1, "beta": 0.9}


def test_operator_table_names_every_operator() -> None:
    assert set(OPERATORS) == {
        "scale_constant", "perturb_hparam", "swap_unary", "swap_operands", "swap_operator",
        "insert_term", "delete_statement",
    }
