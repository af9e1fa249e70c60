"""Control preference losses for tests and the baseline benchmark: each must fail tier 0 or
score near zero. Not seeds of any campaign (they are not in tasks/baselines)."""
