"""Campaigns through the Ray executor on a real two-node Ray cluster (a head and a second node, both
on 127.0.0.1, started here with `ray start`): the same archive as the local pool for the same seed,
even when an actor is killed mid-job, and a driver killed with SIGKILL resumes as it does locally."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from ..needs_ray import require_ray
from .test_campaign import CONFIG_TOML, SEED, descendants, optforge, read, start, wait_for

require_ray()
pytestmark = [pytest.mark.ray, pytest.mark.slow]

RAY = str(pathlib.Path(sys.executable).with_name("ray"))
ACTOR_TITLE = "ray::SandboxActor"  # Ray's process title for an actor of that class


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_start(*args: str, env: dict[str, str]) -> None:
    out = subprocess.run([RAY, "start", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
                          "--num-cpus=1", *args], capture_output=True, text=True, env=env,
                         timeout=180, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if text in pathlib.Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry))
    return pids


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("optforge-cache")


@pytest.fixture(scope="module")
def cluster(cache) -> Iterator[str]:
    """A head and a second node with one CPU each; their processes carry this temp dir in their
    command lines, so teardown stops exactly them (never another Ray on the machine)."""
    # Short: Ray's Unix sockets live under it, and a socket path has at most 107 characters.
    temp = tempfile.mkdtemp(prefix="optray-", dir="/tmp")
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_TMPDIR")}
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_TMPDIR=temp)  # the driver reads these too
    env = {**os.environ, "OPTFORGE_CACHE_DIR": str(cache)}  # each node's own cache
    address = f"127.0.0.1:{_free_port()}"
    try:
        _ray_start("--head", f"--port={address.split(':')[1]}", "--include-dashboard=false",
                   f"--temp-dir={temp}", env=env)
        _ray_start(f"--address={address}", env=env)
        yield address
    finally:
        # With their children: Ray's agents and workers retitle themselves ("ray::IDLE").
        tagged = _processes_mentioning(temp)
        for pid in [*tagged, *(d for t in tagged for d in descendants(t))]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(CONFIG_TOML)
    return path


def _scores(directory: pathlib.Path) -> list[tuple[str, int, str, float | None]]:
    """(candidate, tier, status, score) of every stored evaluation, in storage order."""
    snap = read(directory)
    return [(e.candidate_id, e.tier, e.status, e.score) for e in snap.evaluations]


def _start_on_ray(directory: pathlib.Path, log: pathlib.Path, cluster: str, cache, config_file, cwd):
    """The tiny campaign (budget 3) through the cluster, started in its own session, once an actor
    is running a job (so that a kill lands mid-job)."""
    proc = start("run", "--config", config_file, "--dir", directory, "--budget", 3,
                 "--ray-address", cluster, "--workers", 2, cache=cache, cwd=cwd, log=log)
    busy = wait_for(lambda: bool(_actor_pids(running=True)), proc, timeout=600)
    if not busy:
        os.killpg(proc.pid, signal.SIGKILL)
    assert busy, log.read_text()[-3000:]
    return proc


def _actor_pids(running: bool) -> list[int]:
    title = ACTOR_TITLE + (".run" if running else "")
    return [pid for pid in _processes_mentioning(title)]


def test_a_campaign_through_two_nodes_equals_the_local_one_though_an_actor_is_killed(
    cluster, cache, config_file, tmp_path
):
    local = tmp_path / "local"
    out = optforge("run", "--config", config_file, "--dir", local, "--budget", 3,
                   cache=cache, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]

    remote, log = tmp_path / "ray", tmp_path / "ray.log"
    proc = _start_on_ray(remote, log, cluster, cache, config_file, tmp_path)
    try:
        victim = _actor_pids(running=True)[0]
        os.kill(victim, signal.SIGKILL)
        assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "replacing Ray actor pid" in text, text[-3000:]
    # Same candidates, same evaluations, same scores: a retried job is stored once, and the
    # executor changes where jobs run, never what they compute.
    assert _scores(remote) == _scores(local)
    snap = read(remote)
    assert sum(c.proposer != SEED for c in snap.candidates) == 3
    assert {e.environment.get("executor") for e in snap.evaluations if e.environment} == {"ray"}
    assert {e.environment.get("ray_nodes") for e in snap.evaluations if e.environment} == {"2"}


def test_a_driver_killed_with_sigkill_resumes_through_ray(cluster, cache, config_file, tmp_path):
    directory, log = tmp_path / "D", tmp_path / "run.log"
    proc = _start_on_ray(directory, log, cluster, cache, config_file, tmp_path)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # Ray stops the actors a dead driver owned (and their sandbox workers die with them).
    deadline = time.monotonic() + 60
    while _actor_pids(running=False) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _actor_pids(running=False), "actors outlived their driver"

    out = optforge("resume", directory, "--ray-address", cluster, cache=cache, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    snap = read(directory)
    assert sum(c.proposer != SEED for c in snap.candidates) == 3
    keys = [(e.candidate_id, e.tier) for e in snap.evaluations]
    assert len(keys) == len(set(keys)), "an evaluation was stored twice"
