"""The proposers' half of the scaling_rule kind: grammar terms that rewrite one entry of the returned
dict, crossovers of two rules, and children that pass the contract and tier 0."""

from __future__ import annotations

import ast
import dataclasses
import math
import random
import re

import pytest

from optforge.agent.proposers import grammar, syntax
from optforge.agent.proposers.base import ParentInfo, ProposalRequest
from optforge.agent.proposers.crossover import blend_functions
from optforge.agent.proposers.kinds import proposal_kind
from optforge.agent.proposers.kinds.scaling_rule import SCALING_TERMS, take_entry, take_group
from optforge.agent.proposers.mutate import MutationProposer
from optforge.tasks.adapters import SCALING_GROUPS, CandidateScalingRule
from optforge.tasks.baselines import baseline_names, baseline_source
from optforge.tasks.contracts import check_source, load_candidate
from optforge.tasks.tier0 import run_tier0

KIND = "scaling_rule"
BASELINES = baseline_names(KIND)
BASE = {g: {"lr": 0.01, "weight_decay": 0.0 if g == "vector" else 0.2} for g in SCALING_GROUPS}
TERMS = {t.tag: t for t in SCALING_TERMS}


def values(source: str, width: int, group: str, base_width: int = 32) -> tuple[float, float]:
    """The guarded (lr, weight decay) a rule gives; raises CandidateRuntimeError past the guards."""
    out = CandidateScalingRule(load_candidate(source, KIND))(width, base_width, group, BASE[group])
    return out["lr"], out["weight_decay"]


def insert(source: str, tag: str, rng: random.Random | None = None, **fixed: object) -> str:
    """`source` with the term `tag` inserted, its choices fixed where given."""
    term = TERMS[tag]
    if fixed:
        term = dataclasses.replace(term, choices=tuple((ph, (fixed.get(ph, vs[0]),)) for ph, vs in term.choices))  # type: ignore[misc]
    tree = ast.parse(source)
    fn = syntax.functions(tree)["scale"]
    done = grammar._try_term(tree, fn, KIND, term, rng or random.Random(0))
    assert done is not None and done.startswith(f"insert {tag}")
    syntax.ensure_imports(tree)
    return ast.unparse(tree)


def request(*names: str) -> ProposalRequest:
    parents = tuple(ParentInfo(f"id-{n}", n, baseline_source(KIND, n), None, "ok") for n in names)
    return ProposalRequest(KIND, parents)


# ---------------------------------------------------------------------------------------- grammar


@pytest.mark.parametrize("tag", sorted(TERMS))
@pytest.mark.parametrize("name", BASELINES)
def test_every_term_applies_to_every_baseline(tag: str, name: str) -> None:
    source = baseline_source(KIND, name)
    for seed in range(4):  # different choices of groups, powers and constants
        child = insert(source, tag, random.Random(seed))
        assert check_source(child, KIND) == [] and child != ast.unparse(ast.parse(source))
        for group in SCALING_GROUPS:
            # valid on the screened widths; at the base width only a constant factor moves a value
            for width in (64, 128, 256):
                values(child, width, group)
            if tag not in ("lr_scale", "wd_scale"):
                assert values(child, 32, group) == pytest.approx(values(source, 32, group)), (tag, group, child)


def test_a_power_term_multiplies_one_group_entry_by_a_power_of_the_width_ratio() -> None:
    child = insert(baseline_source(KIND, "mup"), "lr_power", p="-1 / 3", G=("embedding",))
    assert "(width / base_width) ** (-1 / 3) if group in ('embedding',) else 1.0" in child  # a str choice is code
    assert values(child, 256, "embedding") == pytest.approx((0.01 * 8 ** (-1 / 3), 0.2))
    assert values(child, 256, "hidden") == pytest.approx((0.01 / 8, 0.2))  # other groups untouched
    child = insert(child, "wd_power", p="0.5", G=("hidden", "output"))
    assert values(child, 128, "output") == pytest.approx((0.01 / 4, 0.2 * 2))
    assert values(child, 128, "embedding") == pytest.approx((0.01 * 4 ** (-1 / 3), 0.2))


def test_terms_rewrite_every_return_of_a_branching_rule() -> None:
    child = insert(baseline_source(KIND, "mup"), "lr_scale", c=0.5, G=("hidden", "output", "embedding", "vector"))
    scale = syntax.functions(ast.parse(child))["scale"]
    returned = [ast.unparse(r.value) for r in syntax.returns(scale) if r.value is not None]
    assert len(returned) == 2 and all("lr_factor" in r for r in returned)
    for group in SCALING_GROUPS:
        assert values(child, 64, group)[0] == pytest.approx(values(baseline_source(KIND, "mup"), 64, group)[0] / 2)


def test_a_cap_on_lr_times_weight_decay_restores_the_guard_a_power_broke() -> None:
    broken = insert(baseline_source(KIND, "constant"), "wd_power", p="1", G=("hidden",))
    assert not run_tier0(load_candidate(broken, KIND)).passed  # lr x wd grows past 0.05 when wide
    capped = insert(broken, "wd_cap", c=2.0)  # at most twice the base lr x wd
    report = run_tier0(load_candidate(capped, KIND))
    assert report.passed, report.checks
    assert values(capped, 48, "hidden") == pytest.approx((0.01, 0.3))  # under the cap: the power's value
    for width in (64, 256, 4096):
        lr, wd = values(capped, width, "hidden")
        assert lr * wd == pytest.approx(2 * 0.01 * 0.2)


def test_a_timescale_term_keeps_lr_times_weight_decay_at_the_base_product() -> None:
    child = insert(baseline_source(KIND, "mup"), "wd_timescale", q="1", G=("hidden", "output"))
    for width in (64, 512, 4096):
        lr, wd = values(child, width, "hidden")
        assert lr * wd == pytest.approx(0.01 * 0.2) and lr == pytest.approx(0.01 * 32 / width)
    assert values(child, 512, "embedding") == pytest.approx((0.01, 0.2))


def test_a_branch_gives_one_group_its_own_rule_ahead_of_the_others() -> None:
    child = insert(baseline_source(KIND, "constant"), "branch", p="-0.5", G=("output",))
    assert values(child, 128, "output") == pytest.approx((0.01 / 2, 0.2))
    assert values(child, 128, "hidden") == pytest.approx((0.01, 0.2))
    child = insert(child, "branch", p="-1", G=("hidden",))
    assert values(child, 128, "hidden") == pytest.approx((0.01 / 4, 0.2))
    # a later term rewrites the branches' returns too
    child = insert(child, "lr_floor", c=0.3)
    assert values(child, 64, "hidden") == pytest.approx((0.01 / 2, 0.2))
    assert values(child, 256, "hidden") == pytest.approx((0.003, 0.2))  # 1/8 is below the floor
    assert values(child, 256, "output") == pytest.approx((0.01 / 8 ** 0.5, 0.2))  # 0.35 is above it


def test_an_entry_term_on_a_rule_that_returns_a_name_keeps_the_other_keys() -> None:
    source = "def scale(width, base_width, group, base):\n    out = dict(base)\n    return out\n"
    child = insert(source, "lr_power", p="-1", G=("hidden",))
    assert "return {**out, 'lr': out['lr'] * lr_factor}" in child
    assert values(child, 64, "hidden") == pytest.approx((0.005, 0.2))
    child = insert(child, "wd_power", p="1", G=("hidden",))
    child = insert(child, "wd_cap", c=1.0)  # reads the lr of the same return: lr / 2 lets wd x 2
    assert values(child, 64, "hidden") == pytest.approx((0.005, 0.4))
    assert values(child, 256, "hidden") == pytest.approx((0.01 / 8, 1.6))
    assert values(child, 256, "embedding") == pytest.approx((0.01, 0.2))


def test_the_entry_mechanism_leaves_a_whole_value_term_alone() -> None:
    # existing kinds' result terms have no entry: their combine still wraps the whole return value
    ret = ast.parse("return x").body[0]
    assert isinstance(ret, ast.Return)
    grammar._combine(ret, grammar.Term("t", "result", combine="({e}) * 2"), {}, "schedule")
    assert ast.unparse(ret) == "return x * 2"
    assert grammar.source_text(0.5) == "0.5" and grammar.source_text(("a",)) == "('a',)" and grammar.source_text("-1 / 3") == "-1 / 3"


# -------------------------------------------------------------------------------------- crossover


def trees(a: str, b: str) -> tuple[ast.Module, ast.Module]:
    return ast.parse(baseline_source(KIND, a)), ast.parse(baseline_source(KIND, b))


def test_take_group_uses_the_other_rule_for_one_group() -> None:
    for seed in range(6):
        a, b = trees("constant", "mup")
        done = take_group(a, b, KIND, random.Random(seed), "mup")
        assert done is not None
        groups = re.findall(r"take the (.+) group's rule", done[0])[0].split(" and ")
        child = ast.unparse(a)
        assert check_source(child, KIND) == [] and "def _mup(" in child
        for group in SCALING_GROUPS:
            expected = baseline_source(KIND, "mup" if group in groups else "constant")
            assert values(child, 256, group) == pytest.approx(values(expected, 256, group))


def test_take_entry_takes_the_learning_rates_or_the_weight_decays_of_the_other_rule() -> None:
    seen = set()
    for seed in range(8):
        a, b = trees("mup", "mup_wd_linear")
        done = take_entry(a, b, KIND, random.Random(seed), "mup_wd_linear")
        assert done is not None
        child = ast.unparse(a)
        assert check_source(child, KIND) == []
        seen.add(done[1])
        # the two share their learning rates: the child's weight decay tells which entry it took
        lr, wd = values(child, 128, "hidden")
        assert lr == pytest.approx(0.01 / 4)
        assert wd == pytest.approx(0.8 if done[1] == "take_wd" else 0.2)
    assert seen == {"take_lr", "take_wd"}


def test_the_geometric_blend_mixes_two_rules_entry_by_entry() -> None:
    a, b = trees("constant", "mup_wd_linear")
    done = blend_functions(a, b, KIND, random.Random(0), "mup_wd_linear")
    assert done is not None and "geometric mean" in done[0]
    w = float(re.findall(r"\((0\.\d+)\)", done[0])[0])
    child = ast.unparse(a)
    assert check_source(child, KIND) == []
    lr, wd = values(child, 128, "hidden")
    assert lr == pytest.approx(0.01 * 4 ** -(1 - w)) and wd == pytest.approx(0.2 * 4 ** (1 - w))
    assert values(child, 128, "vector") == pytest.approx((0.01, 0.0))  # a zero weight decay stays zero


def test_crossing_a_rule_with_itself_takes_nothing() -> None:
    a, b = trees("mup", "mup")
    assert take_group(a, b, KIND, random.Random(0), "mup") is None
    assert take_entry(a, b, KIND, random.Random(0), "mup") is None


def test_the_kind_declares_its_dict_entries_and_crossovers() -> None:
    spec = proposal_kind(KIND)
    assert spec.entries == ("lr", "weight_decay") and spec.main_function == "scale"
    assert {t.entry for t in spec.terms if t.combine} <= {"lr", "weight_decay"}
    assert set(spec.examples) <= set(BASELINES)


# ---------------------------------------------------------------------------------------- children


def test_most_children_of_the_baselines_pass_tier_0() -> None:
    """Children of one baseline or two (crossed over, then mutated): all pass the contract and at
    least 80% pass tier 0 (every width from 8 up: AdamW's guards and a smooth law of width).
    Measured 36/40 when written (180/200 over more seeds); the failures are real ones (lr x wd
    past 0.05 far beyond the scored widths, a `/ ratio` swapped into `* ratio`)."""
    passed, total = 0, 40
    for seed in range(total):
        rng = random.Random(seed)
        picked = rng.sample(BASELINES, 1 + seed % 2)
        child = MutationProposer().propose(request(*picked), rng)
        assert check_source(child.source, KIND) == [], child.thought
        passed += run_tier0(load_candidate(child.source, KIND)).passed
    assert passed / total >= 0.8, f"{passed}/{total}"


def test_children_differ_in_behaviour_not_only_in_text() -> None:
    fingerprints = set()
    for seed in range(20):
        child = MutationProposer().propose(request(BASELINES[seed % len(BASELINES)]), random.Random(seed))
        report = run_tier0(load_candidate(child.source, KIND))
        if report.passed:
            fingerprints.add(report.fingerprint)
    baseline_prints = {run_tier0(load_candidate(baseline_source(KIND, n), KIND)).fingerprint for n in BASELINES}
    assert len(fingerprints - baseline_prints) >= 12


# ------------------------------------------------------------------------------------- to prompts


def test_a_parent_carries_each_width_loss_and_rule_values_from_the_archive_into_its_prompt() -> None:
    from optforge.agent.campaign.records import parent_info
    from optforge.agent.proposers.prompting import user_prompt
    from optforge.archive import CandidateRecord, EvaluationRecord, TaskResult

    source = baseline_source(KIND, "mup")
    hp = (("embedding", 0.0113, 0.2), ("hidden", 0.002825, 0.2), ("output", 0.002825, 0.2), ("vector", 0.0113, 0.0))
    result = TaskResult("stdlib_resmlp_w128", "ok", "heldout_loss", score=math.exp(-0.013), final=1.3519,
                        reference_final=1.3389, reference_lr=0.00123, hyperparameters=hp)
    candidate = CandidateRecord.new(source, KIND, "mup")
    info = parent_info(candidate, EvaluationRecord(candidate.id, 1, "ok", score=0.98, tasks=(result,)))
    (feedback,) = info.feedback
    assert (feedback.final, feedback.reference_final, feedback.hyperparameters) == (1.3519, 1.3389, hp)
    text = user_prompt(ProposalRequest(KIND, (info,)), "rewrite", 0)
    assert "- stdlib_resmlp_w128: score 0.987, behind the reference" in text
    assert "held-out loss 1.352 nats, tuned optimum at this width 1.339: gap +0.013 nats" in text
    assert "embedding 0.0113, 0.2; hidden 0.00282, 0.2; output 0.00282, 0.2; vector 0.0113, 0" in text
    assert "0.00123" not in text  # the tuned optimum's own learning rate stays out of prompts
