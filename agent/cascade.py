"""The cascade's two decisions, as pure functions over stored records:

- which candidates earn a held-out (tier-2) evaluation: the top of tier 1, above a floor;
- when a challenger replaces the campaign's incumbent best: only on a significant paired difference
  (seed noise on these tasks is several percent of the loss, DESIGN.md), compared at the highest
  tier both have passed, seed by seed (every candidate trains on the same seeds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from optforge.archive import EvaluationRecord
from optforge.tasks.scoring import paired_ratio

from .config import CascadeConfig


def tier2_due(score: float, tier1_scores: Iterable[float], cascade: CascadeConfig) -> bool:
    """Whether a candidate with tier-1 `score` is in the top `tier2_fraction` of `tier1_scores`
    (every tier-1 score so far, its own included) and at least `tier2_min_score`."""
    scores = list(tier1_scores)
    if cascade.tier2_fraction <= 0 or score < cascade.tier2_min_score or not scores:
        return False
    places = max(1, math.ceil(cascade.tier2_fraction * len(scores)))
    better = sum(s > score for s in scores)
    return better < places


@dataclass(frozen=True)
class Verdict:
    promote: bool
    tier: int | None  # the tier compared at; None when there was no incumbent or no common tier
    ratio: float | None = None  # > 1: the challenger's held-out metric is lower (better)
    ci: tuple[float, float] | None = None


def challenge(
    challenger: Mapping[int, EvaluationRecord], incumbent: Mapping[int, EvaluationRecord] | None
) -> Verdict:
    """Should `challenger` (its evaluations by tier) replace `incumbent` as the campaign's best?"""
    top = 2 if 2 in challenger else 1
    if top not in challenger or not challenger[top].passed:
        return Verdict(False, None)  # failed where it counts (a held-out failure is no elite)
    if incumbent is None:
        return Verdict(True, None)
    if 2 in incumbent and incumbent[2].passed and top < 2:
        return Verdict(False, None)  # the incumbent proved itself on held-out tasks; this did not
    tier = 2 if top == 2 and 2 in incumbent and incumbent[2].passed else 1
    if tier not in incumbent or not incumbent[tier].passed:
        return Verdict(True, tier)  # the incumbent has nothing valid to compare at
    pairs = _paired_finals(challenger[tier], incumbent[tier])
    if pairs is None:
        return Verdict(False, tier)
    ratio, ci = paired_ratio(*pairs)
    return Verdict(ci[0] > 1.0, tier, ratio, ci)


def _paired_finals(
    a: EvaluationRecord, b: EvaluationRecord
) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """Per-task per-seed finals of both, matched by task; None when they cannot be paired (other
    tasks or seeds, e.g. evaluated under another config)."""
    finals_a = {t["name"]: t.get("seed_finals") or [] for t in a.tasks}
    finals_b = {t["name"]: t.get("seed_finals") or [] for t in b.tasks}
    if set(finals_a) != set(finals_b) or a.task_versions != b.task_versions:
        return None
    names = sorted(finals_a)
    if any(not finals_a[n] or len(finals_a[n]) != len(finals_b[n]) for n in names):
        return None
    return [np.array(finals_a[n]) for n in names], [np.array(finals_b[n]) for n in names]
