"""Scoring: the loss ratio against AdamW is 1 at a tie, monotone, bounded, and its CIs are honest."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optforge.tasks.scoring import (
    AGGREGATE_CLIP,
    SCORE_CAP,
    SCORE_FLOOR,
    aggregate,
    loss_ratio,
    score_task,
)

finals = st.floats(1e-4, 1e3, allow_nan=False)


@given(finals)
def test_a_tie_scores_exactly_one(value):
    assert loss_ratio(value, value) == 1.0


@given(finals, finals, finals)
def test_lower_final_loss_never_scores_lower(reference, a, b):
    better, worse = sorted((a, b))
    assert loss_ratio(better, reference) >= loss_ratio(worse, reference)


@given(st.floats(0, 1e6), finals)
def test_score_is_bounded(candidate, reference):
    assert SCORE_FLOOR <= loss_ratio(candidate, reference) <= SCORE_CAP


def test_a_quarter_lower_loss_scores_four_thirds():
    assert loss_ratio(0.75, 1.0) == pytest.approx(4 / 3)
    assert loss_ratio(2.0, 1.0) == pytest.approx(0.5)


def test_zero_loss_scores_the_cap_unless_adamw_also_reached_zero():
    assert loss_ratio(0.0, 0.1) == SCORE_CAP
    assert loss_ratio(0.0, 0.0) == 1.0


def _curves(rng, final, seeds=8):
    return np.linspace(2.0, final, 11) + rng.normal(0, 0.01, (seeds, 11))


def test_paired_scores_and_intervals():
    rng = np.random.default_rng(0)
    reference = _curves(rng, 0.2)
    same = score_task(reference, reference)
    assert same.score == 1.0 and same.score_ci == (1.0, 1.0)
    assert same.paired_diff_ci == (0.0, 0.0)
    worse = score_task(reference + 0.1, reference)
    assert worse.score == pytest.approx(reference[:, -1].mean() / (reference[:, -1].mean() + 0.1))
    assert worse.score_ci[1] < 1.0
    assert worse.paired_diff_ci[0] > 0.05
    assert worse.final_ci[0] < worse.final < worse.final_ci[1]


def test_interval_covers_the_noise_of_a_different_seed_set():
    rng = np.random.default_rng(2)
    a, b = _curves(rng, 0.5), _curves(rng, 0.5)
    result = score_task(a, b)
    assert result.score_ci[0] <= 1.0 <= result.score_ci[1]


def test_no_single_task_can_dominate_the_aggregate():
    """One task at 5x (the old quadratic's reach) moves the aggregate no more than AGGREGATE_CLIP
    would; the per-task score itself is kept unclipped."""
    rng = np.random.default_rng(3)
    reference = _curves(rng, 0.3, seeds=6)
    tie = score_task(reference, reference)
    huge = score_task(reference / 5, reference)
    assert huge.score == pytest.approx(5.0)
    score, (lo, hi) = aggregate([huge, tie, tie])
    assert score == pytest.approx(AGGREGATE_CLIP ** (1 / 3) * tie.score ** (2 / 3))
    assert hi <= AGGREGATE_CLIP ** (1 / 3) * max(tie.bootstrap) ** (2 / 3) + 1e-9
    assert aggregate([huge, tie, tie], clip=100.0)[0] == pytest.approx(5.0 ** (1 / 3) * tie.score ** (2 / 3))


def test_aggregate_is_the_geometric_mean():
    rng = np.random.default_rng(1)
    reference = _curves(rng, 0.3, seeds=6)
    a = score_task(reference, reference)
    b = score_task(reference + 0.05, reference)
    score, (lo, hi) = aggregate([a, b])
    assert score == pytest.approx(np.sqrt(a.score * b.score))
    assert lo <= score <= hi
