"""The scaling_rule kind's trusted half: contract and kind inference, the guarded adapter, tier 0's
checks (the lookup-table probe among them), the param-group helper users call, and the corpus."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from optforge.tasks.adapters import (
    CandidateRuntimeError,
    CandidateScalingRule,
    default_parameter_group,
    scaled_param_groups,
)
from optforge.tasks.baselines import baseline_names, load_baseline
from optforge.tasks.contracts import check_source, infer_kind, load_candidate
from optforge.tasks.kinds.scaling_rule import FLOOR, MAX_EXPONENT, SLACK, first_jump, rule_table
from optforge.tasks.scaling import corpus
from optforge.tasks.scaling.model import ResMLP, parameter_count
from optforge.tasks.scaling.train import Recipe, checked_hyperparameters, multiplier
from optforge.tasks.tier0 import run_tier0

KIND = "scaling_rule"
BASE = {g: {"lr": 0.01, "weight_decay": 0.0 if g == "vector" else 0.2} for g in ("embedding", "hidden", "output", "vector")}


def rule(body: str) -> str:
    return f"import math\n\n\ndef scale(width, base_width, group, base):\n{body}\n"


def lookup_table(tuned: dict[int, tuple[float, float]]) -> str:
    """A rule that returns the given (lr, wd) for the hidden and output groups at exactly the scored
    widths and the base values elsewhere: what a table of a reference's optima looks like."""
    return rule(f"    table = {tuned!r}\n"
                "    if group in ('hidden', 'output') and width in table:\n"
                "        lr, wd = table[width]\n"
                "        return {'lr': lr, 'weight_decay': wd}\n"
                "    return {'lr': base['lr'], 'weight_decay': base['weight_decay']}")


def test_the_baselines_are_the_four_the_issue_names_and_all_pass_tier0():
    assert baseline_names(KIND) == ["constant", "mup", "mup_wd_linear", "mup_wd_sqrt"]
    fingerprints = set()
    for name in baseline_names(KIND):
        report = run_tier0(load_baseline(KIND, name))
        assert report.passed, (name, report.error)
        fingerprints.add(report.fingerprint)
    assert len(fingerprints) == 4


def test_kind_inference_tells_a_scaling_rule_from_every_other_kind():
    assert infer_kind(rule("    return {'lr': base['lr'], 'weight_decay': 0.0}")) == KIND
    assert check_source("def scale(width, base_width, group):\n    return {}\n", KIND) == [
        "'scale' must take 4 positional arguments, it takes 3"]


def test_muP_halves_the_hidden_learning_rate_per_doubling_and_keeps_the_rest():
    table = rule_table(load_baseline(KIND, "mup"), (32, 64, 128), 32, BASE)
    assert table[64]["hidden"][0] == pytest.approx(0.005) and table[128]["output"][0] == pytest.approx(0.0025)
    assert table[128]["embedding"] == (0.01, 0.2) and table[128]["vector"] == (0.01, 0.0)
    linear = rule_table(load_baseline(KIND, "mup_wd_linear"), (128,), 32, BASE)[128]["hidden"]
    assert linear[0] * linear[1] == pytest.approx(0.01 * 0.2)  # lr x wd constant


@pytest.mark.parametrize(("body", "message"), [
    ("    return {'lr': 2.0, 'weight_decay': 0.0}", "lr=2: it must be in (0, 1]"),
    ("    return {'lr': 0.01, 'weight_decay': -1.0}", "weight_decay=-1: it must be >= 0"),
    ("    return {'lr': 0.5, 'weight_decay': 1.0}", "lr x weight_decay = 0.5: keep it <= 0.05"),
    ("    return {'lr': math.nan, 'weight_decay': 0.0}", "both must be finite numbers"),
    ("    return {'lr': 0.01}", "must return {\"lr\": ..., \"weight_decay\": ...}, got ['lr']"),
    ("    return 0.01", "got float"),
    ("    return {'lr': 0.01 / abs(width - 300) if width != 300 else 1 / 0, 'weight_decay': 0.0}",
     "scale(300, 32, 'embedding', ...) raised ZeroDivisionError"),
])
def test_tier0_rejects_values_adamw_cannot_use_in_one_line(body, message):
    report = run_tier0(load_candidate(rule(body), KIND))
    assert not report.passed and report.error.startswith("valid_everywhere: ")
    assert message in report.error and "\n" not in report.error


def test_a_lookup_table_of_the_scored_widths_fails_tier0_and_says_why():
    tuned = {64: (0.0036, 0.3), 128: (0.0016, 0.45), 256: (0.0008, 0.6)}  # muP-like, off the base's law
    report = run_tier0(load_candidate(lookup_table(tuned), KIND))
    assert not report.passed
    assert report.error.startswith("smooth_in_width: the hidden group's lr jumps")
    assert "between widths 63 and 64" in report.error and "not a table of the scored widths" in report.error


def test_a_table_hidden_in_a_range_of_widths_is_caught_at_the_range_edge():
    source = rule("    if 60 <= width <= 70 and group == 'hidden':\n"
                  "        return {'lr': base['lr'] / 3, 'weight_decay': base['weight_decay']}\n"
                  "    return dict(base)")
    report = run_tier0(load_candidate(source, KIND))
    assert not report.passed and "between widths 59 and 60" in report.error


def test_smooth_rules_with_kinks_and_steep_powers_pass():
    kinked = rule("    r = width / base_width\n"
                  "    return {'lr': base['lr'] * min(1.0, 64 / width), 'weight_decay': base['weight_decay'] * r ** 0.3}")
    steep = rule("    r = width / base_width\n"
                 "    lr = base['lr'] * r ** -2 if group == 'hidden' else base['lr']\n"
                 "    return {'lr': max(lr, 1e-9), 'weight_decay': base['weight_decay']}")
    for source in (kinked, steep):
        report = run_tier0(load_candidate(source, KIND))
        assert report.passed, report.error


@settings(max_examples=30, deadline=None)
@given(exponent=st.floats(-4.0, 4.0), extra=st.floats(1.0, 10.0), at=st.integers(9, 1024))
def test_first_jump_accepts_any_power_law_up_to_the_bound_and_finds_any_step(exponent, extra, at):
    widths = range(8, 1025)
    # a step twice what the bound allows there, whichever way the law itself moves
    jump = math.exp(2 * (MAX_EXPONENT * math.log(at / (at - 1)) + SLACK)) * extra
    law = {w: {g: (min(1.0, 1e-3 * (w / 32) ** exponent), 0.1) for g in BASE} for w in widths}
    assert first_jump(law) is None
    # Below FLOOR a value counts as 0 (first_jump skips it): a step there is no step.
    assume(law[at - 1]["hidden"][0] >= FLOOR)
    stepped = {w: {g: (v[0] * (jump if w >= at else 1.0), v[1]) for g, v in row.items()} for w, row in law.items()}
    found = first_jump(stepped)
    assert found is not None and f"between widths {at - 1} and {at}" in found


def test_the_adapter_passes_a_copy_of_base_so_a_rule_cannot_change_it():
    source = rule("    base['lr'] = 1.0\n    return {'lr': 0.001, 'weight_decay': 0.0}")
    base = {"lr": 0.01, "weight_decay": 0.1}
    assert CandidateScalingRule(load_candidate(source, KIND))(64, 32, "hidden", base) == {"lr": 0.001, "weight_decay": 0.0}
    assert base == {"lr": 0.01, "weight_decay": 0.1}
    with pytest.raises(ValueError, match="unknown parameter group 'attention'"):
        CandidateScalingRule(load_candidate(source, KIND))(64, 32, "attention", base)


class TinyLM(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.embed = torch.nn.Embedding(50, width)
        self.block = torch.nn.Linear(width, width)
        self.norm = torch.nn.LayerNorm(width)
        self.lm_head = torch.nn.Linear(width, 50, bias=False)


def test_scaled_param_groups_builds_adamw_groups_for_a_users_wider_model():
    model = TinyLM(128)
    groups = scaled_param_groups(model, load_baseline(KIND, "mup"), 128, 32, BASE)
    by_name = {g["group"]: g for g in groups}
    assert set(by_name) == {"embedding", "hidden", "output", "vector"}
    assert by_name["hidden"]["lr"] == pytest.approx(0.01 / 4) and by_name["embedding"]["lr"] == 0.01
    assert [p.shape for p in by_name["output"]["params"]] == [torch.Size([50, 128])]
    assert len(by_name["vector"]["params"]) == 3  # the block's bias and the LayerNorm's two
    optimizer = torch.optim.AdamW(groups)
    model.lm_head(model.norm(model.block(model.embed(torch.tensor([1, 2]))))).sum().backward()
    optimizer.step()
    with pytest.raises(ValueError, match="no base values for group"):
        scaled_param_groups(model, load_baseline(KIND, "mup"), 128, 32, {"hidden": BASE["hidden"]})


def test_default_parameter_group_reads_common_names():
    matrix, vector = torch.zeros(4, 4), torch.zeros(4)
    assert default_parameter_group("transformer.wte.weight", matrix) == "embedding"
    assert default_parameter_group("model.embed_tokens.weight", matrix) == "embedding"
    assert default_parameter_group("lm_head.weight", matrix) == "output"
    assert default_parameter_group("layers.0.mlp.fc1.weight", matrix) == "hidden"
    assert default_parameter_group("layers.0.mlp.fc1.bias", vector) == "vector"
    assert default_parameter_group("unembed.weight", matrix) == "output"


def test_a_rule_that_breaks_a_guard_at_run_time_is_a_candidate_error():
    source = rule("    return {'lr': 0.01 * width, 'weight_decay': 0.0}")
    with pytest.raises(CandidateRuntimeError, match=r"scale\(256, 32, 'hidden', ...\) returned lr=2.56"):
        CandidateScalingRule(load_candidate(source, KIND))(256, 32, "hidden", BASE["hidden"])


def test_trusted_hyperparameter_check_and_schedule():
    good = {g: [0.01, 0.1] for g in BASE}
    assert checked_hyperparameters(good)["hidden"] == (0.01, 0.1)
    with pytest.raises(ValueError, match="lr x wd"):
        checked_hyperparameters({**good, "output": [0.5, 1.0]})
    with pytest.raises(ValueError, match="expected"):
        checked_hyperparameters({"hidden": [0.01, 0.1]})
    recipe = Recipe()
    assert multiplier(0, recipe) == pytest.approx(0.01) and multiplier(99, recipe) == 1.0
    assert multiplier(1050, recipe) == pytest.approx(0.5, abs=0.01) and multiplier(1999, recipe) > 0


def test_the_model_has_the_spec_s_groups_and_init():
    model = ResMLP(64, torch.Generator().manual_seed(0))
    groups = model.groups()
    assert sum(p.numel() for ps in groups.values() for p in ps) == parameter_count(64)
    assert groups["embedding"][0].std().item() == pytest.approx(1 / math.sqrt(32), rel=0.05)
    assert groups["hidden"][0].std().item() == pytest.approx(1 / math.sqrt(64), rel=0.05)
    assert not groups["output"][0].any()  # a zero readout: every width starts at the uniform guess
    logits = model(torch.zeros(3, 32, dtype=torch.long))
    assert logits.shape == (3, 96) and torch.allclose(logits, torch.zeros_like(logits))


def test_the_shipped_corpus_is_python_3_11_7_s_stdlib_split_by_file():
    train, heldout = corpus.train_ids(), corpus.heldout_ids()
    assert len(train) == 4_444_250 and len(heldout) == 254_030
    assert int(train.max()) < len(corpus.VOCAB) == 96
    assert corpus.decode(heldout[:40]).startswith('r"""UUID objects')  # uuid.py opens the held-out files
    assert "def " in corpus.decode(train[:5000])


def test_a_rebuild_refuses_another_standard_library(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    with pytest.raises(corpus.CorpusError, match="is not CPython 3.11.7's standard library"):
        corpus.build(tmp_path)
