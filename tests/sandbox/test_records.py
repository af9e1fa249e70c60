from __future__ import annotations

import pytest

from optforge.sandbox import Job, Limits, ProcessRunner, Runner


def test_limits_reject_non_positive_or_non_finite_values() -> None:
    with pytest.raises(ValueError, match="wall_seconds"):
        Limits(wall_seconds=0)
    with pytest.raises(ValueError, match="wall_seconds"):
        Limits(wall_seconds=float("inf"))
    with pytest.raises(ValueError, match="max_processes"):
        Limits(max_processes=0)


def test_job_entry_must_name_module_and_function() -> None:
    with pytest.raises(ValueError, match="module:function"):
        Job("optforge.tasks.jobs.run_job", {})
    assert Job("a.b:c", {}).limits == Limits()


def test_process_runner_implements_the_runner_protocol() -> None:
    runner_type: type[Runner] = ProcessRunner  # checked by mypy
    for method in ("run", "run_many", "close"):
        assert callable(getattr(runner_type, method))
