"""Evaluating one candidate: the contract check, tier 0 and the proxy tasks of a tier (evaluate.py),
the learning-rate sweeps (sweeps.py), the tuned reference's cached sweeps (baseline_cache.py), job
time limits (limits.py) and the sandbox runner's set-up (runtime.py)."""
