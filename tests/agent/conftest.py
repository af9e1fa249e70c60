"""Fixtures that run evaluations through the real process sandbox (bubblewrap), warmed once."""

import pathlib

import pytest

from optforge.agent.config import EvaluationConfig, SandboxConfig, SweepConfig
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.evaluation.runtime import open_runner


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("optforge-cache")


@pytest.fixture(scope="session")
def runner(cache_root):
    with open_runner(SandboxConfig(workers=2), cache_root) as r:
        yield r


@pytest.fixture(scope="session")
def small_config() -> EvaluationConfig:
    """A cheap tier-1 configuration for behaviour tests: 2 seeds, 3-point sweep, no refinement
    (tests/agent/test_sweeps.py covers it)."""
    return EvaluationConfig(seeds={1: 2, 2: 2}, sweep=SweepConfig(points=3, factor=4.0, refine=0))


@pytest.fixture(scope="session")
def baseline_cache(cache_root) -> BaselineCache:
    return BaselineCache(cache_root)
