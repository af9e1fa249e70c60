"""The preference task's score: the monotone upper concave hull of (KL, reward) points and its area."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optforge.tasks.preference.frontier import KL_CAP, Point, auc, gain_at, hull

R0 = 0.0733
# The spec's measured per-beta means (KL nats, reward), betas 0.1, 0.3, 1, 3.
DPO = [Point(13.1, 0.526), Point(5.41, 0.449), Point(2.22, 0.315), Point(1.61, 0.248)]


def test_dpo_reproduces_the_measured_area_and_gains():
    vertices = hull(DPO, R0)
    assert auc(vertices) == pytest.approx(0.2825, abs=5e-4)  # the spec: 0.283 (per-seed mean)
    assert [round(gain_at(vertices, k), 3) for k in (2, 4, 8)] == [0.218, 0.316, 0.402]
    assert Point(1.61, 0.248) not in vertices  # under the chord from the origin to beta 1's point


def test_controls_score_as_measured():
    assert auc(hull([Point(26.5, 0.341), Point(26.2, 0.183)], R0)) == pytest.approx(0.0404, abs=5e-4)  # spec: 0.041
    assert auc(hull([Point(14.2, -0.18), Point(1.68, -0.064)], R0)) == 0.0  # anti-DPO: below R0
    assert auc(hull([Point(0.0, R0)], R0)) == 0.0  # the reference itself (a constant loss)
    # A run that did not move (KL below 1e-6) is the reference: its sampled reward is noise.
    assert auc(hull([Point(1e-9, 0.9)], R0)) == 0.0


def test_reward_beyond_the_cap_counts_as_reached_at_the_cap():
    far = auc(hull([Point(2 * KL_CAP, R0 + 1.0)], R0))
    assert far == pytest.approx(0.5 * 0.5)  # the chord reaches gain 0.5 at the cap: mean 0.25


points = st.lists(st.builds(Point, st.floats(0, 30), st.floats(-1, 1)), max_size=6)


@given(points)
def test_the_hull_is_increasing_and_concave(pts):
    v = hull(pts, R0)
    assert v[0] == Point(0.0, R0)
    kls, rewards = [p.kl for p in v], [p.reward for p in v]
    assert kls == sorted(set(kls)) and rewards == sorted(rewards)
    slopes = [(b.reward - a.reward) / (b.kl - a.kl) for a, b in zip(v, v[1:], strict=False)]
    assert all(s1 >= s2 - 1e-9 for s1, s2 in zip(slopes, slopes[1:], strict=False))


@given(points, st.builds(Point, st.floats(0, 30), st.floats(-1, 1)))
def test_a_further_run_never_lowers_the_area(pts, extra):
    assert auc(hull([*pts, extra], R0)) >= auc(hull(pts, R0)) - 1e-12
    assert 0.0 <= auc(hull(pts, R0)) <= 1 - R0 + 1e-12
