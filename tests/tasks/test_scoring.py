"""Scoring: the speed-up against AdamW is 1 at a tie, monotone, bounded, and its CIs are honest."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optforge.tasks.scoring import SCORE_FLOOR, aggregate, reach_step, score_task, speedup

STEPS = np.linspace(0, 100, 11)
decreasing = st.lists(st.floats(0.01, 10.0), min_size=11, max_size=11).map(lambda v: np.sort(np.array(v))[::-1].copy())


@given(decreasing)
def test_a_tie_scores_exactly_one(curve):
    assert speedup(curve, curve, STEPS) == pytest.approx(1.0)


@given(decreasing, st.floats(0.5, 2.0), st.floats(0.5, 2.0))
def test_lower_final_loss_never_scores_lower(reference, a, b):
    lo, hi = sorted((a, b))
    better = reference.copy()
    worse = reference.copy()
    better[-1] = reference[-1] * lo
    worse[-1] = reference[-1] * hi
    better[:-1] = np.maximum(better[:-1], better[-1])
    worse[:-1] = np.maximum(worse[:-1], worse[-1])
    assert speedup(better, reference, STEPS) >= speedup(worse, reference, STEPS) - 1e-12


@given(decreasing, decreasing)
def test_score_is_bounded(candidate, reference):
    assert SCORE_FLOOR <= speedup(candidate, reference, STEPS) <= len(STEPS) - 1


def test_reaching_the_target_in_half_the_steps_is_a_speedup_of_two():
    reference = np.linspace(1.0, 0.0, 11)  # reaches 0 at step 100
    candidate = np.concatenate([np.linspace(1.0, 0.0, 6), np.zeros(5)])  # reaches 0 at step 50
    assert speedup(candidate, reference, STEPS) == pytest.approx(2.0)


def test_ending_where_adamw_was_at_a_quarter_of_the_budget_scores_a_quarter():
    reference = np.linspace(1.0, 0.0, 11)
    candidate = np.full(11, 0.75)
    candidate[0] = 1.0
    assert speedup(candidate, reference, STEPS) == pytest.approx(0.25)


def test_no_progress_gets_the_floor():
    reference = np.linspace(1.0, 0.0, 11)
    assert speedup(np.ones(11), reference, STEPS) == SCORE_FLOOR


def test_reach_step_interpolates():
    assert reach_step(np.array([4.0, 2.0, 0.0]), np.array([0.0, 10.0, 20.0]), 1.0) == pytest.approx(15.0)
    assert reach_step(np.array([4.0, 2.0]), np.array([0.0, 10.0]), 1.0) == float("inf")


def test_paired_scores_and_intervals():
    rng = np.random.default_rng(0)
    base = np.linspace(1.0, 0.2, 11)
    reference = base + rng.normal(0, 0.01, (8, 11))
    same = score_task(reference, reference, list(STEPS))
    assert same.score == pytest.approx(1.0)
    assert same.paired_diff_ci == (0.0, 0.0)
    worse = score_task(reference + 0.1, reference, list(STEPS))
    assert worse.score < 1.0 and worse.score_ci[1] < 1.0
    assert worse.paired_diff_ci[0] > 0.05
    assert worse.final_ci[0] < worse.final < worse.final_ci[1]


def test_aggregate_is_the_geometric_mean():
    rng = np.random.default_rng(1)
    reference = np.linspace(1.0, 0.2, 11) + rng.normal(0, 0.01, (6, 11))
    a = score_task(reference, reference, list(STEPS))
    b = score_task(reference + 0.05, reference, list(STEPS))
    score, (lo, hi) = aggregate([a, b])
    assert score == pytest.approx(np.sqrt(a.score * b.score))
    assert lo <= score <= hi
