"""The preference_loss kind: contract, kind inference, adapter and tier 0 on baselines and controls."""

from __future__ import annotations

import pathlib

import pytest
import torch

from optforge.tasks.adapters import CandidatePreferenceLoss, CandidateRuntimeError
from optforge.tasks.baselines import baseline_names, baseline_source, load_baseline
from optforge.tasks.contracts import check_source, infer_kind, load_candidate
from optforge.tasks.tier0 import run_tier0

CONTROLS = pathlib.Path(__file__).parents[2] / "tasks" / "preference" / "controls"
HEAD = "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
MARGIN = "    m = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)\n"


def control(name: str) -> str:
    return (CONTROLS / f"{name}.py").read_text()


def tier0(source: str):
    return run_tier0(load_candidate(source, "preference_loss"))


def test_the_bundled_baselines_are_dpo_ipo_slic_and_lrml_and_pass_tier_0():
    assert baseline_names("preference_loss") == ["dpo", "ipo", "lrml", "slic"]
    reports = {n: tier0(baseline_source("preference_loss", n)) for n in baseline_names("preference_loss")}
    assert all(r.passed for r in reports.values()), {n: r.error for n, r in reports.items()}
    assert len({r.fingerprint for r in reports.values()}) == 4


def test_kind_inference_tells_a_preference_loss_from_a_classification_loss():
    assert infer_kind(baseline_source("preference_loss", "dpo")) == "preference_loss"
    assert infer_kind(baseline_source("loss", "cross_entropy")) == "loss"
    assert check_source(baseline_source("loss", "cross_entropy"), "preference_loss") == [
        "'loss' must take 5 positional arguments, it takes 2"
    ]


def test_the_same_function_written_differently_has_the_same_fingerprint():
    softplus = "import torch.nn.functional as F\n" + HEAD + MARGIN + "    return F.softplus(-beta * m)\n"
    assert tier0(softplus).fingerprint == tier0(baseline_source("preference_loss", "dpo")).fingerprint


@pytest.mark.parametrize(("body", "check"), [
    ("    return torch.zeros(3)\n", "runs"),  # wrong shape: one loss per pair
    ("    return (m * 0 + 1.0).sum()\n", "runs"),  # a scalar, not per-pair losses
    ("    return torch.exp(1000 * m)\n", "finite"),
    ("    return m.detach()\n", "reacts_to_policy"),
    ("    return (m * 0).detach() + beta\n", "reacts_to_policy"),
])
def test_tier_0_rejects_what_cannot_train(body, check):
    report = tier0("import torch\n" + HEAD + MARGIN + body)
    assert not report.passed and report.error.startswith(check), report.error
    assert "\n" not in report.error


def test_tier_0_rejects_the_constant_control_and_lets_the_others_reach_the_task():
    assert tier0(control("constant")).error.startswith("reacts_to_policy")
    # These train, just badly: the task's score is what must put them near zero (slow tests).
    for name in ("anti_dpo", "reference_free", "sft_chosen"):
        assert tier0(control(name)).passed, name


def test_the_adapter_returns_per_pair_losses_and_names_a_wrong_shape_in_one_line():
    dpo = CandidatePreferenceLoss(load_baseline("preference_loss", "dpo"))
    pc, pr, rc, rr = (torch.randn(6) - 50 for _ in range(4))
    losses = dpo(pc, pr, rc, rr, 0.1)
    margin = (pc - pr) - (rc - rr)
    assert torch.allclose(losses, torch.nn.functional.softplus(-0.1 * margin))
    scalar = load_candidate("import torch\n" + HEAD + "    return policy_chosen_logps.mean()\n", "preference_loss")
    with pytest.raises(CandidateRuntimeError, match=r"shape \(6,\), got \(\)") as exc:
        CandidatePreferenceLoss(scalar)(pc, pr, rc, rr, 0.1)
    assert "\n" not in str(exc.value)
