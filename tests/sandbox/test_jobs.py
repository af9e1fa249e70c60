"""Results, failures as statuses, timeouts, output capture and concurrency, through the public API."""

from __future__ import annotations

import time

import pytest
import torch

from optforge.sandbox import Job, ProcessRunner, SandboxError
from tests.sandbox.conftest import ENTRIES, code_job, needs_bwrap


def test_ok_job_round_trips_tensors_and_meta_and_sees_warm_up_state(runner: ProcessRunner) -> None:
    result = runner.run(Job(f"{ENTRIES}:ok", {"n": 4, "tag": "x"}))
    assert result.status == "ok" and result.error is None
    assert torch.equal(result.tensors["w"], torch.arange(4, dtype=torch.float32))
    assert result.tensors["eye"].dtype == torch.float64
    assert result.meta["echo"] == {"n": 4, "tag": "x"}
    assert result.meta["warm"] == "training data"  # loaded from data_dir by warm-up, before the fork
    assert result.meta["cwd"] == result.meta["scratch"]  # the entry runs in its scratch dir
    assert result.wall_seconds > 0


def test_exception_becomes_error_status_with_first_line_and_candidate_line(
        runner: ProcessRunner) -> None:
    result = runner.run(code_job("x = 1\n\ny = x / 0\n"))
    assert result.status == "error"
    assert result.error == "ZeroDivisionError: division by zero (line 3 of candidate)"
    assert result.tensors == {} and result.meta == {}
    assert "Traceback" in result.output_tail  # the full traceback stays available for debugging


def test_syntax_error_reports_the_candidate_line(runner: ProcessRunner) -> None:
    result = runner.run(code_job("x = 1\ndef f(:\n"))
    assert result.status == "error"
    assert result.error is not None
    assert result.error.startswith("SyntaxError: ") and result.error.endswith("(line 2 of candidate)")


def test_candidate_exiting_is_a_failure_not_a_result(runner: ProcessRunner) -> None:
    exited = runner.run(code_job("import sys; sys.exit(3)"))
    assert (exited.status, exited.error) == ("error", "SystemExit: 3 (line 1 of candidate)")
    crashed = runner.run(code_job("import os; os._exit(0)"))
    assert (crashed.status, crashed.error) == ("crashed", "job exited with code 0 without a result")
    segv = runner.run(code_job("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"))
    assert (segv.status, segv.error) == ("crashed", "job killed by signal SIGSEGV")


@pytest.mark.parametrize("code", ["while True: pass", "import time; time.sleep(60)"],
                         ids=["busy-loop", "sleep"])
def test_timeout_kills_the_job_and_the_runner_keeps_working(runner: ProcessRunner, code: str) -> None:
    start = time.monotonic()
    result = runner.run(code_job(f"print('started', flush=True)\n{code}", wall_seconds=1))
    assert (result.status, result.error) == ("timeout", "wall-clock limit of 1 s exceeded")
    assert time.monotonic() - start < 5
    assert "started" in result.output_tail
    assert runner.run(Job(f"{ENTRIES}:ok", {"n": 1})).status == "ok"


def test_output_is_captured_and_only_its_tail_kept(runner: ProcessRunner) -> None:
    code = "import sys\nfor i in range(20000): print('line', i)\nprint('to stderr', file=sys.stderr)"
    result = runner.run(code_job(code, max_output_bytes=1000))
    assert result.status == "ok"
    assert len(result.output_tail.encode()) <= 1000
    assert result.output_tail.endswith("line 19999\nto stderr\n")


def test_unusable_entries_are_reported_not_raised(runner: ProcessRunner) -> None:
    missing = runner.run(Job("tests.sandbox.no_such_module:run", {}))
    assert missing.status == "sandbox_error" and "ModuleNotFoundError" in (missing.error or "")
    shape = runner.run(Job(f"{ENTRIES}:bad_return", {}))
    assert shape.status == "error" and "must return (dict[str, torch.Tensor]" in (shape.error or "")
    meta = runner.run(code_job("result = {'x': object()}"))
    assert meta.status == "error" and "not JSON serializable" in (meta.error or "")


def test_payload_must_be_json(runner: ProcessRunner) -> None:
    with pytest.raises(ValueError, match="JSON-serializable"):
        runner.run(Job(f"{ENTRIES}:ok", {"n": object()}))


def test_run_many_runs_concurrently_and_keeps_job_order(runner: ProcessRunner) -> None:
    jobs = [code_job(f"import time; time.sleep(0.4); result = {{'i': {i}}}") for i in range(4)]
    start = time.monotonic()
    results = runner.run_many(jobs)
    elapsed = time.monotonic() - start
    assert [r.meta["i"] for r in results] == [0, 1, 2, 3]
    assert elapsed < 4 * 0.4  # two workers: about 0.8 s, serial would be 1.6 s
    assert runner.run_many([]) == []


def test_per_job_overhead_on_a_warm_worker_is_milliseconds(runner: ProcessRunner) -> None:
    # A fresh interpreter that imports torch takes ~2-5 s; a forked warm child must be far cheaper.
    # Generous bound for slow CI; the real measurement lives in benchmarks/.
    job = Job(f"{ENTRIES}:ok", {"n": 1})
    runner.run(job)
    start = time.monotonic()
    for _ in range(10):
        assert runner.run(job).status == "ok"
    per_job = (time.monotonic() - start) / 10
    assert per_job < 0.5, f"{per_job:.3f} s per trivial job"


def test_a_job_leaves_nothing_for_the_next_one(runner: ProcessRunner) -> None:
    code = (
        "import os\n"
        "from tests.sandbox import entries\n"
        "result = {'found': sorted(os.listdir('.')), 'warm': entries.WARM['state']}\n"
        "open('planted.py', 'w').write('x = 1')\n"
        "os.mkdir('locked'); os.chmod('locked', 0)\n"
        "entries.WARM['state'] = 'tampered'\n"
    )
    # Two workers, four jobs: at least one worker runs two of them.
    for result in runner.run_many([code_job(code) for _ in range(4)]):
        assert result.status == "ok", result.error
        assert result.meta == {"found": [], "warm": "training data"}


def test_limits_reach_the_job(runner: ProcessRunner) -> None:
    code = (
        "import resource\n"
        "result = {n: resource.getrlimit(getattr(resource, n))[0] for n in "
        "('RLIMIT_AS', 'RLIMIT_NPROC', 'RLIMIT_FSIZE', 'RLIMIT_CORE')}\n"
    )
    result = runner.run(code_job(code, memory_mb=3000, max_file_mb=5, max_processes=20))
    mb = 1024 * 1024
    assert result.meta["RLIMIT_AS"] == 3000 * mb and result.meta["RLIMIT_FSIZE"] == 5 * mb
    assert result.meta["RLIMIT_CORE"] == 0 and result.meta["RLIMIT_NPROC"] >= 20


def test_oversized_file_write_is_an_error_not_a_crash(runner: ProcessRunner) -> None:
    result = runner.run(code_job("open('big', 'wb').write(b'x' * (3 * 1024 * 1024))", max_file_mb=1))
    assert result.status == "error" and "File too large" in (result.error or "")


@needs_bwrap
def test_broken_warm_up_fails_construction_with_its_error() -> None:
    with pytest.raises(SandboxError) as caught:
        ProcessRunner(workers=1, warmup=[f"{ENTRIES}:broken_warm_up"])
    assert "RuntimeError: no training data here" in str(caught.value)
    assert "Traceback" in str(caught.value)  # the worker log tail says where
