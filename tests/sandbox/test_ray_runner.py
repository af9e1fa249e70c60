"""RayRunner on a real (private, local) Ray instance: the same results as the local pool, the local
sandbox's limits still in force inside the actors, and a killed actor replaced with its job retried
once, then reported as crashed. The multi-node campaign tests are tests/agent/test_ray_executor.py."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from optforge.sandbox import Job, ProcessRunner, SandboxUnavailable

from ..needs_ray import require_ray
from .conftest import ENTRIES, code_job, needs_bwrap

ray = require_ray()
from optforge.sandbox import ray_runner  # noqa: E402  (after the check: it imports ray lazily)

pytestmark = [pytest.mark.ray, needs_bwrap]

REPO = Path(__file__).resolve().parents[2]
NODE = f"{ENTRIES}:ray_node"


@pytest.fixture(scope="module")
def actors_find_tests() -> Iterator[None]:
    """Ray's worker processes import the node factory from this checkout's tests package."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), previous) if p)
    yield
    if previous is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = previous


@pytest.fixture(scope="module")
def runner(actors_find_tests) -> Iterator[ray_runner.RayRunner]:
    with ray_runner.RayRunner(NODE, {}, actors=2, num_cpus=1) as r:
        yield r


def test_a_node_that_cannot_build_its_runner_is_one_clear_error(actors_find_tests):
    # First in the module: this runner starts (and on failure stops) its own private instance.
    with pytest.raises(SandboxUnavailable) as caught:
        ray_runner.RayRunner(NODE, {"fail": "bubblewrap is missing on this node"}, actors=1,
                             start_timeout_s=120)
    assert "RuntimeError: bubblewrap is missing on this node" in str(caught.value)
    assert "\n" not in str(caught.value)



def test_results_come_back_in_order_and_equal_the_local_pools(runner):
    jobs = [Job(f"{ENTRIES}:ok", {"n": n}) for n in range(5)]
    remote = runner.run_many(jobs)
    with ProcessRunner(workers=1, warmup=[f"{ENTRIES}:warm_up"]) as local:
        here = local.run_many(jobs)
    assert [r.status for r in remote] == ["ok"] * 5
    for a, b in zip(remote, here, strict=True):
        assert a.tensors.keys() == b.tensors.keys()
        assert all(a.tensors[k].equal(b.tensors[k]) for k in a.tensors)
        assert a.meta["echo"] == b.meta["echo"] and a.meta["warm"] == "warm"
    assert runner.environment["executor"] == "ray"
    assert runner.environment["isolation"] == "bwrap"  # the local sandbox, inside each actor


def test_the_local_sandbox_still_kills_a_hung_job_and_the_actor_is_kept(runner):
    before = runner.replaced
    result = runner.run(code_job("while True: pass", wall_seconds=2))
    assert result.status == "timeout"
    assert runner.replaced == before  # the worker inside timed it out; the actor is healthy
    assert runner.run(Job(f"{ENTRIES}:ok", {"n": 1})).status == "ok"


def test_the_sandbox_still_blocks_the_network_inside_an_actor(runner):
    code = (
        "import socket\n"
        "s = socket.socket(); s.settimeout(2)\n"
        "try:\n    s.connect(('127.0.0.1', 22)); result = {'net': 'open'}\n"
        "except OSError as e:\n    result = {'net': type(e).__name__}\n"
    )
    result = runner.run(code_job(code, wall_seconds=20))
    assert result.status == "ok" and result.meta["net"] != "open", result


def _kill_busy_actors(runner, times: int, after_s: float) -> threading.Thread:
    """Kill (SIGKILL) the process of whichever actor is running a job, `times` times over."""

    def busy_pid() -> int | None:
        idle = set(id(a) for a in list(runner._idle.queue))
        busy = [a for a in list(runner._live) if id(a) not in idle]
        return busy[0].pid if busy else None

    def kill() -> None:
        killed: set[int] = set()
        deadline = time.monotonic() + 120
        while len(killed) < times and time.monotonic() < deadline:
            time.sleep(after_s)
            pid = busy_pid()
            if pid is not None and pid not in killed:
                with contextlib.suppress(ProcessLookupError):  # finished in the meantime
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_a_killed_actor_is_replaced_and_its_job_retried_once(runner):
    before = runner.replaced
    killer = _kill_busy_actors(runner, times=1, after_s=2.0)
    result = runner.run(code_job("import time; time.sleep(6); result = {'done': 1}", wall_seconds=60))
    killer.join()
    assert result.status == "ok" and result.meta == {"done": 1}, result
    assert runner.replaced == before + 1
    # The pool is back to full strength: two jobs still run side by side.
    again = runner.run_many([Job(f"{ENTRIES}:ok", {"n": 2})] * 2)
    assert [r.status for r in again] == ["ok", "ok"]


def test_a_job_that_loses_its_actor_twice_is_reported_as_crashed(runner):
    killer = _kill_busy_actors(runner, times=2, after_s=2.0)
    result = runner.run(code_job("import time; time.sleep(8)", wall_seconds=60))
    killer.join()
    assert result.status == "crashed"
    assert result.error.startswith("the job lost its Ray actor 2 times"), result.error


def test_an_unreachable_cluster_is_one_clear_error():
    if ray.is_initialized():  # the module's private instance: connect afresh
        ray.shutdown()
    with pytest.raises(SandboxUnavailable, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:9"):
        ray_runner.RayRunner(NODE, {}, address="127.0.0.1:9", actors=1)
