"""Nothing a job starts outlives it; limits bind even for root; the pool survives dying workers."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from optforge.sandbox import Job, ProcessRunner, RunResult, host_worker
from tests.sandbox import hostprocs
from tests.sandbox.conftest import ENTRIES, code_job, needs_root

# A grandchild that double-forks into its own session, as a daemon would, then a detached `sleep`.
DAEMON = """
import os, subprocess, time
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        subprocess.Popen(["sleep", "{token}"], start_new_session=True)
    os._exit(0)
os.waitpid(pid, 0)
time.sleep(0.2)
result = {{"started": True}}
"""


def _ok_again(runner: ProcessRunner) -> None:
    assert runner.run(Job(f"{ENTRIES}:ok", {"n": 1})).status == "ok"


def test_detached_daemon_started_by_a_job_does_not_survive_it(runner: ProcessRunner) -> None:
    token = hostprocs.new_token()
    result = runner.run(code_job(DAEMON.format(token=token)))
    assert result.status == "ok", result.output_tail
    assert hostprocs.live_pids_with_arg(token) == []


def test_daemon_of_a_timed_out_job_does_not_survive_it(runner: ProcessRunner) -> None:
    token = hostprocs.new_token()
    result = runner.run(code_job(DAEMON.format(token=token) + "\ntime.sleep(60)", wall_seconds=1))
    assert result.status == "timeout"
    assert hostprocs.live_pids_with_arg(token) == []


@needs_root
def test_process_limit_binds_although_the_host_is_root(runner: ProcessRunner) -> None:
    code = (
        "import os, time\n"
        "forked = 0\n"
        "try:\n"
        "    for _ in range(100):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30); os._exit(0)\n"
        "        forked += 1\n"
        "except OSError as exc:\n"
        "    result = {'forked': forked, 'uid': os.getuid(), 'error': exc.errno}\n"
    )
    result = runner.run(code_job(code, max_processes=8))
    assert result.status == "ok", result.output_tail
    assert result.meta["forked"] == 7  # 8 tasks: the job itself and 7 children
    assert result.meta["uid"] >= host_worker.JOB_UID_BASE  # not root inside
    assert hostprocs.job_uid_processes() == []


def test_fork_bomb_is_contained_and_the_host_is_fine_afterwards(runner: ProcessRunner) -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = runner.run(code_job(code, max_processes=16, wall_seconds=1.5))
    assert result.status == "timeout"
    if os.geteuid() == 0:
        assert hostprocs.job_uid_processes() == []
    _ok_again(runner)
    _ok_again(runner)


@pytest.mark.parametrize("code", [
    "blocks = [b'x' * (10 ** 11)]",  # Python MemoryError
    "import torch\nkeep = [torch.empty(2 ** 28) for _ in range(64)]",  # torch allocator failure
], ids=["python", "torch"])
def test_memory_bomb_is_reported_as_oom(runner: ProcessRunner, code: str) -> None:
    result = runner.run(code_job(code, memory_mb=2048))
    assert result.status == "oom", (result.error, result.output_tail)
    _ok_again(runner)


def test_job_cannot_kill_its_worker_and_the_pool_goes_on(runner: ProcessRunner) -> None:
    result = runner.run(code_job("import os\nos.kill(os.getppid(), 9)\nimport time; time.sleep(1)"))
    if os.geteuid() == 0:  # the job runs as its own uid and may not signal the worker
        assert result.status == "error" and "PermissionError" in (result.error or "")
    else:
        assert result.status == "crashed"
    _ok_again(runner)
    _ok_again(runner)


def test_job_cannot_reach_its_workers_channel_or_memory(runner: ProcessRunner) -> None:
    code = (
        "import os\n"
        "result = {'own_fds': sorted(os.listdir('/proc/self/fd'))}\n"
        "for what in ('fd', 'mem', 'environ'):\n"
        "    try:\n"
        "        path = f'/proc/{os.getppid()}/{what}'\n"
        "        os.listdir(path) if what == 'fd' else open(path, 'rb').read(1)\n"
        "        result[what] = 'open'\n"
        "    except OSError as exc:\n"
        "        result[what] = type(exc).__name__\n"
    )
    result = runner.run(code_job(code))
    assert result.status == "ok", result.output_tail
    assert result.meta.pop("own_fds") == ["0", "1", "2", "3"]  # stdio + the listdir's own fd
    assert result.meta == {"fd": "PermissionError", "mem": "PermissionError",
                           "environ": "PermissionError"}


def _run_in_thread(runner: ProcessRunner, code: str, **limits: float) -> tuple[threading.Thread, list[RunResult]]:
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(runner.run(code_job(code, **limits))))
    thread.start()
    return thread, results


def test_worker_that_dies_mid_job_gives_crashed_and_is_replaced(runner: ProcessRunner) -> None:
    token = hostprocs.new_token()
    code = f"import subprocess\nsubprocess.run(['sleep', '{token}'])"
    thread, results = _run_in_thread(runner, code, wall_seconds=60)
    hostprocs.wait_until(lambda: hostprocs.live_pids_with_arg(token), 10, "the job to start")
    os.kill(hostprocs.worker_ancestor(hostprocs.live_pids_with_arg(token)[0]), signal.SIGKILL)
    thread.join(10)
    assert results[0].status == "crashed"
    assert "worker died" in (results[0].error or "")
    hostprocs.wait_until(lambda: not hostprocs.live_pids_with_arg(token), 5, "the job to be gone")
    for _ in range(3):  # both the surviving and the replacement worker serve jobs
        _ok_again(runner)


def test_unresponsive_worker_hits_the_host_deadline_and_is_replaced(
        runner: ProcessRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_worker, "HOST_GRACE_SECONDS", 0.5)
    token = hostprocs.new_token()
    code = f"import subprocess\nsubprocess.run(['sleep', '{token}'])"
    thread, results = _run_in_thread(runner, code, wall_seconds=1)
    hostprocs.wait_until(lambda: hostprocs.live_pids_with_arg(token), 10, "the job to start")
    os.kill(hostprocs.worker_ancestor(hostprocs.live_pids_with_arg(token)[0]), signal.SIGSTOP)
    thread.join(10)
    assert results[0].status == "timeout"
    assert "stopped responding" in (results[0].error or "")
    assert hostprocs.live_pids_with_arg(token) == []
    _ok_again(runner)
