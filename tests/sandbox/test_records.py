"""The sandbox's records: limits that refuse nonsense with a message naming the field, job entries
that name a function, and both backends keeping to the Runner protocol."""

from __future__ import annotations

import inspect
import math

import pytest

from optforge.sandbox import Job, Limits, ProcessRunner, Runner
from optforge.sandbox.docker_runner import DockerRunner

INT_FIELDS = ("memory_mb", "max_processes", "max_file_mb", "max_output_bytes")


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, True, "60"])
def test_wall_seconds_must_be_a_positive_finite_number(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^Limits\.wall_seconds must be a positive number, got "):
        Limits(wall_seconds=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", INT_FIELDS)
@pytest.mark.parametrize("bad", [0, -5, 2.5, True, None])
def test_each_count_limit_must_be_a_positive_int(name: str, bad: object) -> None:
    with pytest.raises(ValueError, match=rf"^Limits\.{name} must be a positive int, got {bad!r}$"):
        Limits(**{name: bad})  # type: ignore[arg-type]


def test_good_limits_keep_their_values_and_defaults_fit_a_torch_job() -> None:
    limits = Limits(wall_seconds=0.5, memory_mb=512, max_processes=4, max_file_mb=1, max_output_bytes=10)
    assert (limits.wall_seconds, limits.memory_mb, limits.max_processes) == (0.5, 512, 4)
    default = Limits()
    # torch maps ~0.7 GB before a job does anything, and starts a thread per core.
    assert default.memory_mb >= 2048 and default.max_processes >= 16


@pytest.mark.parametrize("entry", ["optforge.tasks.jobs.run_job", ":run_job", "optforge.tasks.jobs:", ""])
def test_a_job_entry_must_name_a_module_and_a_function(entry: str) -> None:
    with pytest.raises(ValueError, match=r"Job\.entry must look like 'package\.module:function'"):
        Job(entry, {})


def test_a_job_gets_default_limits_unless_given_its_own() -> None:
    assert Job("a.b:c", {}).limits == Limits()
    assert Job("a.b:c", {}, Limits(wall_seconds=3)).limits.wall_seconds == 3


@pytest.mark.parametrize("runner", [ProcessRunner, DockerRunner])
def test_both_backends_keep_to_the_runner_protocol(runner: type[Runner]) -> None:
    # The parametrisation's annotation is what mypy checks; this checks the signatures at run time.
    for method in ("run", "run_many", "close"):
        ours = list(inspect.signature(getattr(runner, method)).parameters)
        protocol = list(inspect.signature(getattr(Runner, method)).parameters)
        assert ours == protocol, (runner.__name__, method)
