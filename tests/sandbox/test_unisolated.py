"""Without bubblewrap (explicit opt-in) the job still gets a clean environment, limits, its own
uid as root, and nothing it starts outlives it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from optforge.sandbox import ProcessRunner, UnisolatedSandboxWarning
from tests.sandbox import hostprocs
from tests.sandbox.conftest import (
    ENTRIES,
    SECRET_NAME,
    SECRET_VALUE,
    code_job,
    needs_root,
    secret_in_environment,
)
from tests.sandbox.test_containment import DAEMON


@pytest.fixture(scope="module")
def plain_runner() -> Iterator[ProcessRunner]:
    with secret_in_environment(), pytest.warns(UnisolatedSandboxWarning):
        runner = ProcessRunner(workers=1, warmup=[f"{ENTRIES}:warm_up"], isolation="none",
                               allow_unisolated=True)
    with runner:
        yield runner


def test_unisolated_runner_says_so(plain_runner: ProcessRunner) -> None:
    assert plain_runner.isolation == "none"


def test_unisolated_job_gets_an_allow_listed_environment(plain_runner: ProcessRunner) -> None:
    result = plain_runner.run(code_job("import os\nresult = dict(os.environ)"))
    assert result.status == "ok", result.output_tail
    assert SECRET_NAME not in result.meta and SECRET_VALUE not in result.meta.values()
    assert result.meta["OMP_NUM_THREADS"] == "1"


@needs_root
def test_unisolated_job_runs_as_an_unprivileged_uid_that_cannot_read_the_host_environment(
        plain_runner: ProcessRunner) -> None:
    code = (
        "import os\n"
        "try:\n"
        f"    leaked = {SECRET_VALUE!r} in open('/proc/{os.getpid()}/environ').read()\n"
        "except OSError as exc:\n"
        "    leaked = type(exc).__name__\n"
        "result = {'uid': os.getuid(), 'leaked': leaked}\n"
    )
    result = plain_runner.run(code_job(code))
    assert result.status == "ok", result.output_tail
    assert result.meta["uid"] != 0 and result.meta["leaked"] == "PermissionError"


def test_unisolated_daemons_and_timeouts_are_cleaned_up(plain_runner: ProcessRunner) -> None:
    token = hostprocs.new_token()
    result = plain_runner.run(code_job(DAEMON.format(token=token) + "\ntime.sleep(60)",
                                       wall_seconds=1))
    assert result.status == "timeout"
    assert hostprocs.live_pids_with_arg(token) == []
    assert plain_runner.run(code_job("result = {'x': 1}")).meta == {"x": 1}


def test_unisolated_fork_limit_and_temp_files_do_not_leak_to_the_next_job(
        plain_runner: ProcessRunner) -> None:
    token = hostprocs.new_token()
    code = (
        "import os, tempfile\n"
        f"result = {{'seen': [n for n in os.listdir('/tmp') if '{token}' in n]}}\n"
        f"open(os.path.join('/tmp', 'planted-{token}'), 'w').write('x')\n"
        "forked = 0\n"
        "try:\n"
        "    for _ in range(50):\n"
        "        if os.fork() == 0:\n"
        "            import time; time.sleep(30); os._exit(0)\n"
        "        forked += 1\n"
        "except OSError:\n"
        "    pass\n"
        "result['forked'] = forked\n"
    )
    first, second = (plain_runner.run(code_job(code, max_processes=6)) for _ in range(2))
    assert first.status == "ok", first.output_tail
    assert first.meta["forked"] == 5 and second.meta == {"seen": [], "forked": 5}
    assert not any(token in name for name in os.listdir("/tmp"))
