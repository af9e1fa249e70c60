"""The scaling_rule kind end to end through the real process sandbox, on a tiny version of the task
(widths 16 and 24 from base 8, 30 steps, two seeds) against a reference computed here with the same
trusted training code: scoring, pairing, statuses, and what the trusted side refuses to believe."""

from __future__ import annotations

import math

import pytest
import torch

from optforge.agent.config import EvaluationConfig, SandboxConfig
from optforge.agent.evaluation.evaluate import run_tier0
from optforge.agent.evaluation.scaling import WidthRun, capped_gap, evaluate_scaling, width_result
from optforge.tasks.baselines import baseline_source
from optforge.tasks.jobs import InvalidResult, checked_scale_result, checked_scale_train_result
from optforge.tasks.scaling import corpus, evaluation
from optforge.tasks.scaling.model import ResMLP
from optforge.tasks.scaling.reference import Reference, WidthReference
from optforge.tasks.scaling.task import GAP_CAP, ScalingTask
from optforge.tasks.scaling.train import Recipe, train

KIND = "scaling_rule"
TASK = ScalingTask("tiny_resmlp", 1, "test", widths=(16, 24), seeds=(0, 1),
                   recipe=Recipe(steps=30, batch=32, warmup=5), base_width=8)
BASE_LR, BASE_WD = 0.01, 0.1


def mup(width: int) -> dict[str, tuple[float, float]]:
    hidden = (BASE_LR * TASK.base_width / width, BASE_WD)
    return {"embedding": (BASE_LR, BASE_WD), "hidden": hidden, "output": hidden, "vector": (BASE_LR, 0.0)}


def mup_as_reference() -> Reference:
    """muP's own runs, in this process, as the tuned optimum: muP must then score exactly 1 in any
    sandbox that trains as this process does."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the sandbox's workers, so that the runs agree to the last bit
    try:
        widths = {}
        for w in TASK.widths:
            losses = {s: evaluation.weights_loss(w, train(w, mup(w), s, corpus.train_ids(), TASK.recipe).weights)
                      for s in TASK.seeds}
            widths[w] = WidthReference(w, mup(w)["hidden"][0], BASE_WD, losses, seconds_per_run=2.0)
    finally:
        torch.set_num_threads(threads)
    return Reference(TASK.base_width, BASE_LR, BASE_WD, widths, "tiny", {})


@pytest.fixture(scope="module")
def tiny_reference() -> Reference:
    return mup_as_reference()


@pytest.fixture(scope="module")
def config() -> EvaluationConfig:
    return EvaluationConfig(sandbox=SandboxConfig(workers=2))


def evaluate(source: str, runner, config, ref, task=TASK):
    screened = run_tier0(source, KIND, runner, config)
    assert screened.status == "ok", screened.error
    return evaluate_scaling(source, KIND, 1, screened, runner, config, task=task, ref=ref)


def test_mup_against_its_own_runs_scores_exactly_one_per_width_and_seed(runner, config, tiny_reference):
    result = evaluate(baseline_source(KIND, "mup"), runner, config, tiny_reference)
    assert result.status == "ok", result.error
    assert [t.name for t in result.tasks] == ["tiny_resmlp_w16", "tiny_resmlp_w24"]
    for t in result.tasks:
        assert t.score == pytest.approx(1.0, abs=1e-5) and t.paired_diff_ci == pytest.approx((0.0, 0.0), abs=1e-5)
        expected = mup(int(t.name[-2:]))
        assert [(g, pytest.approx(lr), pytest.approx(wd)) for g, lr, wd in t.hyperparameters] == [
            (g, *expected[g]) for g in expected]
    assert result.score == pytest.approx(1.0, abs=1e-5) and result.seeds == 2
    assert set(result.task_versions) == {"tiny_resmlp_w16", "tiny_resmlp_w24"}


def test_another_rule_is_scored_by_its_gaps_paired_over_seeds(runner, config, tiny_reference):
    result = evaluate(baseline_source(KIND, "constant"), runner, config, tiny_reference)
    assert result.status == "ok", result.error
    gaps = [t.final - t.reference_final for t in result.tasks]
    assert all(abs(g) > 1e-4 for g in gaps)  # other hyperparameters: another loss
    assert result.score == pytest.approx(math.exp(-sum(gaps) / len(gaps)), rel=1e-6)
    assert result.score_ci is not None and result.score_ci[0] <= result.score <= result.score_ci[1]
    for t in result.tasks:
        assert len(t.seed_finals) == 2 and t.lr == BASE_LR  # constant: the base lr at every width


def test_a_rule_that_patches_torch_cannot_reach_the_training_jobs(runner, config, tiny_reference):
    """The rule's module freezes AdamW when it loads. Training shares no process with candidate
    code, so the runs are muP's own: the score is muP's, not a frozen model's (ln 96 nats)."""
    source = baseline_source(KIND, "mup") + "\n\ntorch.optim.AdamW.step = lambda self, closure=None: None\n"
    result = evaluate(source, runner, config, tiny_reference)
    assert result.status == "ok", result.error
    assert result.score == pytest.approx(1.0, abs=1e-5)


def test_a_rule_that_fails_in_its_scale_job_gets_that_status_and_no_training(runner, config, tiny_reference):
    source = "def scale(width, base_width, group, base):\n    return {'lr': 0.01 * width, 'weight_decay': 0.0}\n"
    screened = run_tier0(source, KIND, runner, config)  # fails tier 0 too (lr > 1 at wide widths)
    assert screened.status == "failed_tier0"
    result = evaluate_scaling(source, KIND, 1, screened, runner, config,
                              task=ScalingTask("wide", 1, "test", widths=(200,), seeds=(0,), recipe=TASK.recipe,
                                               base_width=8), ref=tiny_reference)
    assert result.status == "error" and "returned lr=2: it must be in (0, 1]" in result.error
    assert result.tasks == ()


def test_a_training_job_over_its_limit_is_a_timeout(runner, tiny_reference):
    slow = EvaluationConfig(sandbox=SandboxConfig(workers=2, job_timeout_s=0.05))
    screened = run_tier0(baseline_source(KIND, "mup"), KIND, runner, EvaluationConfig())
    result = evaluate_scaling(baseline_source(KIND, "mup"), KIND, 1, screened, runner, slow, task=TASK,
                              ref=tiny_reference)
    assert result.status == "timeout" and result.error.startswith("tiny_resmlp_w")


def test_a_diverged_run_counts_as_the_cap():
    ref = Reference(8, BASE_LR, BASE_WD, {16: WidthReference(16, 0.005, 0.1, {0: 3.0, 1: 3.1}, 1.0)}, "t", {})
    task = ScalingTask("t", 1, "test", widths=(16,), seeds=(0, 1), base_width=8)
    runs = {(16, 0): WidthRun("ok", math.inf, diverged_at=7), (16, 1): WidthRun("ok", 3.2)}
    assert capped_gap(runs[16, 0], 3.0) == GAP_CAP and capped_gap(WidthRun("ok", 9.0), 3.0) == GAP_CAP
    result = width_result(task, 16, mup(16), runs, ref)
    assert result.status == "ok" and result.final - result.reference_final == pytest.approx((0.5 + 0.1) / 2)
    assert "seed 0 diverged at step 7" in result.error


def test_forged_results_are_refused():
    good = {g: [0.01, 0.1] for g in ("embedding", "hidden", "output", "vector")}
    assert checked_scale_result([64], {"hyperparameters": {"64": good}})[64]["hidden"] == (0.01, 0.1)
    with pytest.raises(InvalidResult, match="widths"):
        checked_scale_result([64, 128], {"hyperparameters": {"64": good}})
    with pytest.raises(InvalidResult, match="lr x wd"):
        checked_scale_result([64], {"hyperparameters": {"64": {**good, "hidden": [1.0, 1.0]}}})
    weights = {k: v.clone() for k, v in ResMLP(16).state_dict().items()}
    assert checked_scale_train_result(16, weights, {"diverged_at": None}, 30)[1] is None
    with pytest.raises(InvalidResult, match=r"embedding is torch.float32 \(32, 96, 16\), expected float32 \(32, 96, 24\)"):
        checked_scale_train_result(24, weights, {"diverged_at": None}, 30)
    with pytest.raises(InvalidResult, match="diverged_at"):
        checked_scale_train_result(16, weights, {"diverged_at": 30}, 30)
    with pytest.raises(InvalidResult, match="float64"):
        checked_scale_train_result(16, {**weights, "readout": weights["readout"].double()}, {"diverged_at": None}, 30)
    with pytest.raises(InvalidResult, match="expected a width-16 ResMLP"):
        checked_scale_train_result(16, {**weights, "extra": weights["readout"]}, {"diverged_at": None}, 30)
