"""The cascade's decisions: who earns tier 2, and when a challenger replaces the incumbent."""

from __future__ import annotations

import numpy as np
import pytest

from optforge.agent.cascade import challenge, tier2_due
from optforge.agent.config import CascadeConfig
from optforge.archive import EvaluationRecord
from optforge.tasks.scoring import paired_ratio

TASKS = ("a", "b")


def _eval(tier: int, finals: dict[str, list[float]], status: str = "ok") -> EvaluationRecord:
    tasks = tuple({"name": n, "status": "ok", "seed_finals": f} for n, f in finals.items())
    return EvaluationRecord(
        "c" * 64, tier, status, score=1.0 if status == "ok" else None, tasks=tasks,
        task_versions={n: "v1" for n in finals},
    )


def _finals(scale: float, noise: float = 0.01, seed: int = 0) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    base = np.array([1.0, 1.1, 0.9, 1.05, 0.95, 1.02, 0.98, 1.0])
    return {n: list(scale * base * (1 + noise * rng.standard_normal(8))) for n in TASKS}


def test_tier2_goes_to_the_top_fraction_above_the_floor():
    cascade = CascadeConfig(tier2_fraction=0.25, tier2_min_score=1.0)
    scores = [0.8, 0.9, 1.0, 1.05, 1.1, 1.2, 0.7, 0.95]  # top 25% of 8: two places
    assert tier2_due(1.2, scores, cascade)
    assert tier2_due(1.1, scores, cascade)
    assert not tier2_due(1.05, scores, cascade)
    assert not tier2_due(0.9, [0.5, 0.9], cascade)  # the best so far, but below AdamW
    assert not tier2_due(1.2, scores, CascadeConfig(tier2_fraction=0.0))


def test_the_first_passing_candidate_becomes_the_incumbent():
    verdict = challenge({0: _eval(0, {}), 1: _eval(1, _finals(1.0))}, None)
    assert verdict.promote and verdict.tier is None


def test_a_clearly_lower_loss_is_promoted_and_noise_is_not():
    incumbent = {1: _eval(1, _finals(1.0, seed=1))}
    better = challenge({1: _eval(1, _finals(0.8, seed=2))}, incumbent)
    assert better.promote and better.tier == 1 and better.ratio == pytest.approx(1.25, rel=0.05)
    assert better.ci is not None and better.ci[0] > 1.0
    same = challenge({1: _eval(1, _finals(1.0, noise=0.05, seed=3))}, incumbent)
    assert not same.promote and same.ci is not None and same.ci[0] <= 1.0 <= same.ci[1]


def test_held_out_results_decide_once_the_incumbent_has_them():
    incumbent = {1: _eval(1, _finals(1.0)), 2: _eval(2, _finals(1.0))}
    # Far better on tier 1 alone: not enough against an incumbent proven on held-out tasks.
    assert not challenge({1: _eval(1, _finals(0.5))}, incumbent).promote
    # Better on tier 1 but worse on tier 2: compared at tier 2, so not promoted.
    verdict = challenge({1: _eval(1, _finals(0.5)), 2: _eval(2, _finals(1.3))}, incumbent)
    assert verdict.tier == 2 and not verdict.promote


def test_a_failed_held_out_evaluation_never_becomes_the_incumbent():
    challenger = {1: _eval(1, _finals(0.5)), 2: _eval(2, {}, status="diverged")}
    assert not challenge(challenger, {1: _eval(1, _finals(1.0))}).promote


def test_evaluations_of_other_tasks_are_not_compared():
    other = {1: _eval(1, {"x": [1.0] * 8, "y": [1.0] * 8})}
    verdict = challenge({1: _eval(1, _finals(0.5))}, other)
    assert not verdict.promote and verdict.ratio is None


def test_paired_ratio_is_one_for_identical_finals_and_symmetric():
    a = [np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.6, 0.7])]
    ratio, ci = paired_ratio(a, a)
    assert ratio == pytest.approx(1.0) and ci == pytest.approx((1.0, 1.0))
    b = [x * 1.2 for x in a]
    forward, _ = paired_ratio(a, b)
    backward, _ = paired_ratio(b, a)
    assert forward == pytest.approx(1.2) and backward == pytest.approx(1 / 1.2)
    with pytest.raises(ValueError, match="same, non-empty list"):
        paired_ratio(a, a[:1])
