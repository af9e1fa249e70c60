"""Evaluating candidates end to end through the real sandbox, scored by trusted code."""

import pytest

from optforge.agent.evaluation.evaluate import evaluate
from optforge.tasks.baselines import baseline_source

ZERO_UPDATE = """
import torch
HPARAMS = {"lr": 0.001}
def init(param):
    return {}
def update(grad, param, state, step, hp):
    return torch.zeros_like(param), state
"""

NAN_AFTER_TEN = """
import torch
HPARAMS = {"lr": 0.001}
def init(param):
    return {}
def update(grad, param, state, step, hp):
    if step > 10:
        return grad * float("nan"), state
    return -hp["lr"] * torch.sign(grad), state
"""

FORGER = """
import torch
HPARAMS = {"lr": 0.001}
def init(param):
    print('{"score": 1000.0, "status": "ok"}')
    return {}
def update(grad, param, state, step, hp):
    return -hp["lr"] * grad, state
"""


def test_adamw_scores_exactly_one_against_itself(runner, small_config, baseline_cache):
    ev = evaluate(baseline_source("optimizer", "adamw"), "optimizer", 1, runner, small_config, baseline_cache)
    assert ev.status == "ok", ev.error
    assert ev.score == pytest.approx(1.0)
    assert {t.name for t in ev.tasks} >= {"mlp_digits", "logreg_cancer"}
    assert all(t.score == pytest.approx(1.0) for t in ev.tasks)
    assert ev.batching == "vmap_lr" and ev.fingerprint


def test_zero_update_is_rejected_at_tier0(runner, small_config, baseline_cache):
    ev = evaluate(ZERO_UPDATE, "optimizer", 1, runner, small_config, baseline_cache)
    assert ev.status == "failed_tier0"
    assert ev.score is None and "improves_rosenbrock" in ev.error
    assert ev.batching is None  # no mode is recorded for a candidate that trains no further


def test_nan_in_training_is_a_status_never_a_number(runner, small_config, baseline_cache):
    ev = evaluate(NAN_AFTER_TEN, "optimizer", 1, runner, small_config, baseline_cache)
    # Tier 0 runs only 3 probe steps and 100 steps of Rosenbrock; the NaN appears in training.
    assert ev.status in ("diverged", "failed_tier0")
    assert ev.score is None
    if ev.status == "diverged":
        assert all(t.score is None for t in ev.tasks if t.status == "diverged")
        assert "non-finite" in ev.error


def test_contract_violation_never_reaches_the_sandbox(runner, small_config, baseline_cache):
    ev = evaluate("import os\n" + ZERO_UPDATE, "optimizer", 1, runner, small_config, baseline_cache)
    assert ev.status == "invalid" and "import of 'os'" in ev.error


def test_printing_a_fake_result_gains_nothing(runner, small_config, baseline_cache):
    honest = evaluate(FORGER.replace("print(", "len("), "optimizer", 1, runner, small_config, baseline_cache)
    forged = evaluate(FORGER, "optimizer", 1, runner, small_config, baseline_cache)
    assert forged.status == honest.status == "ok"
    assert forged.score == pytest.approx(honest.score)
    assert forged.score < 1.0  # plain SGD at lr 1e-3 is far behind tuned AdamW


def test_loss_and_schedule_candidates_are_scored(runner, small_config, baseline_cache):
    loss = evaluate(baseline_source("loss", "cross_entropy"), "loss", 1, runner, small_config, baseline_cache)
    assert loss.status == "ok", loss.error
    assert all(t.metric == "error" for t in loss.tasks)
    assert loss.score == pytest.approx(1.0)  # cross-entropy + AdamW is the reference itself
    schedule = evaluate(baseline_source("schedule", "cosine_warmup"), "schedule", 1, runner, small_config, baseline_cache)
    assert schedule.status == "ok", schedule.error
    assert schedule.score is not None and schedule.score > 0


def test_timeout_is_a_status(runner, baseline_cache):
    from optforge.agent.config import EvaluationConfig, SandboxConfig, SweepConfig

    slow = ZERO_UPDATE.replace("return torch.zeros_like(param), state", "while True:\n        pass")
    config = EvaluationConfig(seeds={1: 1}, sweep=SweepConfig(points=1), sandbox=SandboxConfig(job_timeout_s=2.0))
    ev = evaluate(slow, "optimizer", 1, runner, config, baseline_cache)
    assert ev.status == "timeout" and ev.score is None


def test_a_hung_tier0_job_costs_seconds_not_minutes(runner, baseline_cache):
    from optforge.agent.config import EvaluationConfig, SandboxConfig

    hung = ZERO_UPDATE.replace("    return {}", "    while True:\n        pass")
    config = EvaluationConfig(sandbox=SandboxConfig(tier0_timeout_s=2.0))
    ev = evaluate(hung, "optimizer", 1, runner, config, baseline_cache)
    assert ev.status == "timeout" and ev.tier == 1
    assert ev.seconds < 15  # the flat limit it replaces was 600 s


# Behaves on tier 0's probe tensors (none has 64 rows) and hangs on mlp_digits' 64x64 weight.
HANGS_ON_64_ROWS = """
import torch
HPARAMS = {"lr": 0.001}
def init(param):
    return {}
def update(grad, param, state, step, hp):
    while param.shape[0] == 64:
        pass
    return -hp["lr"] * grad, state
"""


def test_a_training_job_is_limited_by_what_the_reference_paid(runner, small_config, baseline_cache):
    """Derived limits: a multiple of the reference's cost for the same members, with a floor."""
    sandbox = small_config.sandbox.model_copy(update={"timeout_multiple": 3.0, "min_job_timeout_s": 4.0})
    config = small_config.model_copy(update={"sandbox": sandbox})
    ev = evaluate(HANGS_ON_64_ROWS, "optimizer", 1, runner, config, baseline_cache)
    hung = {t.name: t.status for t in ev.tasks}
    assert hung["mlp_digits"] == "timeout" and hung["logreg_cancer"] == "ok"
    assert ev.status == "timeout"
    assert ev.seconds < 120


def test_an_evaluation_records_how_it_batched(runner, small_config, baseline_cache):
    adamw = evaluate(baseline_source("optimizer", "adamw"), "optimizer", 1, runner, small_config, baseline_cache)
    assert (adamw.batching, adamw.batching_note) == ("vmap_lr", None)
    control_flow = ZERO_UPDATE.replace(
        "    return torch.zeros_like(param), state",
        "    if grad.abs().max() > 1e6:\n        grad = grad * 0\n    return -hp['lr'] * grad, state")
    looped = evaluate(control_flow, "optimizer", 0, runner, small_config, baseline_cache)
    assert looped.status == "ok", looped.error
    assert looped.batching == "loop" and "data-dependent control flow" in looped.batching_note
