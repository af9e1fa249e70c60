"""The Docker runner's lifecycle on a real engine: hardened containers, the image digest in every
record, timeouts, dead workers, memory, leftovers, Ctrl-C / SIGTERM / SIGKILL of the host.

Jobs run the real entry (optforge.tasks.jobs:run_job): only optforge.sandbox and optforge.tasks
are mounted into the containers, so tests/sandbox/entries.py cannot be imported there. A test
makes a job do things through a candidate whose module-level code reaches `torch.os` and
`torch.importlib`: the static contract check lets that through (it is not a security boundary;
the container is), which is exactly what these tests need.

Starting a container (torch import, warm-up) takes 10-40 s on the shared 2-core machine, so one
two-worker runner serves every test that does not need a runner of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optforge.agent.campaign.records import evaluation_config_hash, evaluation_record
from optforge.agent.cli import main as cli
from optforge.agent.config import EvaluationConfig, SandboxConfig
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.evaluation.evaluate import evaluate
from optforge.agent.evaluation.runtime import WARMUP, open_runner, train_data_dir
from optforge.archive import ArchiveStore, CandidateRecord
from optforge.sandbox import DockerRunner, Job, Limits, RunResult, SandboxUnavailable
from optforge.sandbox.docker_config import (
    CONTAINER_UID_BASE,
    LABEL_CAMPAIGN,
    LABEL_OWNER,
    LABEL_OWNER_START,
    LABEL_RUNNER,
    WORKER_HEADROOM_MB,
)
from optforge.sandbox.docker_image import default_image
from optforge.sandbox.docker_runner import process_start
from optforge.tasks.baselines import baseline_source
from tests.sandbox import hostprocs
from tests.sandbox.conftest import SECRET_NAME, SECRET_VALUE, secret_in_environment
from tests.sandbox.docker_fixtures import engine_with_image

pytestmark = pytest.mark.docker

ENTRY = "optforge.tasks.jobs:run_job"
REPO = Path(__file__).resolve().parents[2]
RUNNER_MEMORY_MB = 1024  # jobs' cap; each container gets WORKER_HEADROOM_MB more
SGD = baseline_source("optimizer", "sgd")


def candidate(body: str) -> str:
    """Plain SGD whose module-level code is `body` (run when the job loads the candidate)."""
    return (
        'import torch\nHPARAMS = {"lr": 0.01}\n'
        + textwrap.dedent(body)
        + '\ndef init(param):\n    return {}\n\n'
        'def update(grad, param, state, step, hp):\n    return -hp["lr"] * grad, state\n'
    )


def tier0(source: str = SGD, **limits: Any) -> Job:
    return Job(ENTRY, {"action": "tier0", "kind": "optimizer", "source": source}, Limits(**limits))


def sleeper(token: str) -> str:
    """A candidate whose job runs `sleep <token>` (findable in the host's /proc) until killed."""
    return candidate(f'torch.importlib.import_module("subprocess").run(["sleep", "{token}"])\n')


# A daemon: double fork into a new session, then a detached `sleep`; the job itself returns at once.
DAEMON = """
os = torch.os
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        torch.importlib.import_module("subprocess").Popen(["sleep", "{token}"], start_new_session=True)
    os._exit(0)
os.waitpid(pid, 0)
torch.importlib.import_module("time").sleep(0.2)
"""

# Children that together outgrow the container while each stays far below the job's RLIMIT_AS
# (~300 MB left of RUNNER_MEMORY_MB once torch is mapped): only the cgroup limit can stop them.
# The job waits for them and fails when one was killed, as a real multi-process program would.
MEMORY_HOGS = """
os = torch.os
children = []
for _ in range({count}):
    pid = os.fork()
    if pid == 0:
        hog = b"x" * ({mb} << 20)  # bytes() writes every page: resident, not just reserved
        torch.importlib.import_module("time").sleep(5)
        os._exit(0)
    children.append(pid)
for pid in children:
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(f"a child died with status {{status}}")
"""


def _ok(result: RunResult) -> None:
    assert result.status == "ok", (result.status, result.error, result.output_tail[-2000:])


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    engine = engine_with_image()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache of this module's own (train splits exported once), also for the CLI's runs."""
    directory = tmp_path_factory.mktemp("optforge-cache")
    train_data_dir(directory)
    return directory


@pytest.fixture(scope="module")
def runner(client: Any, cache: Path) -> Iterator[DockerRunner]:
    """Two warm workers, started with a fake secret in the host's environment."""
    with secret_in_environment(), DockerRunner(
        workers=2, warmup=WARMUP, data_dir=train_data_dir(cache), memory_mb=RUNNER_MEMORY_MB,
        campaign=f"test-docker-runner-{uuid.uuid4().hex[:8]}",
    ) as shared:
        yield shared


def containers_of(client: Any, label: str, value: str, *, all: bool = False) -> list[Any]:
    return client.containers.list(all=all, filters={"label": f"{label}={value}"})


def container_of_pid(pid: int) -> str:
    """The id of the container a host process runs in (its cgroup path names it)."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            path = line.strip().split(":", 2)[2]
            if "/docker/" in path:
                return path.rsplit("/docker/", 1)[1].split("/")[0]
    raise LookupError(f"process {pid} is not in a docker container")


def run_in_thread(runner: DockerRunner, job: Job) -> tuple[threading.Thread, list[RunResult]]:
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(runner.run(job)))
    thread.start()
    return thread, results


# -- configuration and records ----------------------------------------------------------------


def test_worker_containers_are_hardened_and_hold_no_host_secret(runner: DockerRunner, client: Any) -> None:
    containers = containers_of(client, LABEL_RUNNER, runner.runner_id)
    assert len(containers) == runner.workers
    for container in containers:
        host, config = container.attrs["HostConfig"], container.attrs["Config"]
        assert host["NetworkMode"] == "none"
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["Privileged"] is False
        uid, _, gid = config["User"].partition(":")
        assert uid.isdigit() and int(uid) >= CONTAINER_UID_BASE and gid == uid
        assert 0 < host["PidsLimit"] <= 1024
        assert host["Memory"] == (RUNNER_MEMORY_MB + WORKER_HEADROOM_MB) << 20
        assert host["MemorySwap"] == host["Memory"]
        assert host["NanoCpus"] == 1_000_000_000
        assert host["Init"] is True
        assert host["LogConfig"]["Config"]["max-size"] == "1m"
        env = config["Env"]
        assert not [v for v in env if v.startswith(f"{SECRET_NAME}=") or SECRET_VALUE in v]
        assert container.attrs["Image"] == runner.image_id  # the image the record names
        assert config["Labels"][LABEL_OWNER_START] == process_start(os.getpid())


def test_the_runner_records_the_images_digest(runner: DockerRunner, client: Any) -> None:
    image = client.images.get(default_image())
    assert runner.environment == {"sandbox": "docker", "image": default_image(), "image_id": image.id}
    assert image.id.startswith("sha256:")


def test_an_evaluation_stored_in_the_archive_keeps_the_image_digest(
        runner: DockerRunner, cache: Path, tmp_path: Path) -> None:
    config = EvaluationConfig(sandbox=SandboxConfig(backend="docker"))
    evaluation = evaluate(SGD, "optimizer", 0, runner, config, BaselineCache(cache))
    assert evaluation.status == "ok", evaluation.error
    record = CandidateRecord.new(SGD, "optimizer", "sgd")
    store = ArchiveStore.create(tmp_path / "archive.sqlite", {"test": True})
    try:
        store.add_candidate(record)
        store.add_evaluation(evaluation_record(
            record.id, evaluation, code_commit=None, config_hash=evaluation_config_hash(config),
            environment=runner.environment))
    finally:
        store.close()
    reopened = ArchiveStore.open(tmp_path / "archive.sqlite")
    try:
        [stored] = reopened.evaluations(candidate_id=record.id)
    finally:
        reopened.close()
    assert stored.environment["image_id"] == client_image_id()
    assert stored.environment == runner.environment


def client_image_id() -> str:
    """The image's id asked of the engine afresh (not through the runner under test)."""
    client = engine_with_image()
    try:
        return str(client.images.get(default_image()).id)
    finally:
        client.close()


# -- jobs that misbehave ----------------------------------------------------------------------


def test_a_timed_out_job_is_killed_and_the_runner_goes_on(runner: DockerRunner) -> None:
    token = hostprocs.new_token()
    result = runner.run(tier0(sleeper(token), wall_seconds=2))
    assert result.status == "timeout", (result.error, result.output_tail)
    assert hostprocs.live_pids_with_arg(token) == []
    for outcome in runner.run_many([tier0(), tier0()]):
        _ok(outcome)


def test_a_daemon_started_by_a_job_does_not_survive_it(runner: DockerRunner) -> None:
    token = hostprocs.new_token()
    _ok(runner.run(tier0(candidate(DAEMON.format(token=token)))))
    assert hostprocs.live_pids_with_arg(token) == []


def test_a_container_killed_mid_job_gives_crashed_and_is_replaced(runner: DockerRunner, client: Any) -> None:
    token = hostprocs.new_token()
    thread, results = run_in_thread(runner, tier0(sleeper(token), wall_seconds=120))
    hostprocs.wait_until(lambda: hostprocs.live_pids_with_arg(token), 30, "the job to start")
    victim = container_of_pid(hostprocs.live_pids_with_arg(token)[0])
    client.api.kill(victim)
    thread.join(30)
    assert results and results[0].status == "crashed", results
    assert "container died" in (results[0].error or "")
    assert hostprocs.live_pids_with_arg(token) == []
    for outcome in runner.run_many([tier0(), tier0(), tier0()]):
        _ok(outcome)
    running = {c.id for c in containers_of(client, LABEL_RUNNER, runner.runner_id)}
    assert len(running) == runner.workers and victim not in running


def test_idle_containers_killed_from_outside_are_replaced_before_the_next_job(
        runner: DockerRunner, client: Any) -> None:
    killed = {c.id for c in containers_of(client, LABEL_RUNNER, runner.runner_id)}
    for cid in killed:
        client.api.kill(cid)
    for outcome in runner.run_many([tier0(), tier0()]):
        _ok(outcome)
    running = {c.id for c in containers_of(client, LABEL_RUNNER, runner.runner_id)}
    assert len(running) == runner.workers and not running & killed


def test_children_outgrowing_the_containers_memory_give_oom(runner: DockerRunner) -> None:
    # 12 x 250 MB of children plus the warm worker (~0.4 GB) exceed the container's 2.5 GB.
    hogs = candidate(MEMORY_HOGS.format(count=12, mb=250))
    result = runner.run(tier0(hogs, memory_mb=RUNNER_MEMORY_MB, wall_seconds=60))
    assert result.status == "oom", (result.error, result.output_tail[-2000:])
    assert "OOM" in (result.error or "")
    for outcome in runner.run_many([tier0(), tier0()]):
        _ok(outcome)


# -- leftovers and the host's exit ------------------------------------------------------------


def _dead_pid() -> int:
    """A pid no process has now (one of ours that has exited and been reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _labelled_sleeper(client: Any, campaign: str, owner_pid: int, start: str | None) -> Any:
    """A container that looks like a sandbox worker of `owner_pid` to the runner's sweep (it only
    sleeps); `start`: the owner's start time as its label records it (None: no such label)."""
    labels = {LABEL_RUNNER: f"fake{uuid.uuid4().hex[:8]}", LABEL_CAMPAIGN: campaign,
              LABEL_OWNER: f"{socket.gethostname()}:{owner_pid}"}
    if start is not None:
        labels[LABEL_OWNER_START] = start
    return client.containers.run(default_image(), ["sleep", "600"], detach=True, labels=labels,
                                 network_mode="none", user="65534:65534", read_only=True)


def test_a_new_runner_removes_dead_owners_containers_but_never_a_live_owners(client: Any) -> None:
    campaign, other = f"test-stale-{uuid.uuid4().hex[:8]}", f"test-live-{uuid.uuid4().hex[:8]}"
    owner = subprocess.Popen(["sleep", "600"])  # another live host process running a sandbox
    started = process_start(owner.pid)
    assert started is not None
    fakes = {
        "dead owner": _labelled_sleeper(client, campaign, _dead_pid(), None),
        "reused pid": _labelled_sleeper(client, other, owner.pid, str(int(started) - 1)),
        "live, same campaign": _labelled_sleeper(client, campaign, owner.pid, started),
        "live, other campaign": _labelled_sleeper(client, other, owner.pid, started),
    }
    try:
        with DockerRunner(workers=1, campaign=campaign, memory_mb=512) as fresh:
            remaining = {c.id for c in client.containers.list(all=True)}
            assert {what for what, c in fakes.items() if c.id in remaining} == {
                "live, same campaign", "live, other campaign"}
            assert len(containers_of(client, LABEL_RUNNER, fresh.runner_id)) == 1
            _ok(fresh.run(tier0()))
        assert containers_of(client, LABEL_RUNNER, fresh.runner_id, all=True) == []
    finally:
        owner.kill()
        owner.wait()
        for fake in fakes.values():
            with contextlib.suppress(Exception):
                fake.remove(force=True)


HOST_SCRIPT = """
from optforge.sandbox import DockerRunner, Job, Limits
runner = DockerRunner(workers=1, campaign={campaign!r}, memory_mb=512)
print("runner", runner.runner_id, flush=True)
runner.run(Job("optforge.tasks.jobs:run_job",
               {{"action": "tier0", "kind": "optimizer", "source": {source!r}}},
               Limits(wall_seconds={wall})))
"""


@contextlib.contextmanager
def host_process(tmp_path: Path, argv: list[str], token: str) -> Iterator[subprocess.Popen[bytes]]:
    """A host process (its output in tmp_path/host.log), once its job's `sleep <token>` runs."""
    log = tmp_path / "host.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log, "wb") as output:
        host = subprocess.Popen(argv, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        hostprocs.wait_until(lambda: hostprocs.live_pids_with_arg(token) or host.poll() is not None,
                             120, "the job to start")
        assert host.poll() is None, log.read_text()
        yield host
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()


def _host_script(tmp_path: Path, campaign: str, token: str, wall: float) -> list[str]:
    script = tmp_path / "host.py"
    script.write_text(HOST_SCRIPT.format(campaign=campaign, source=sleeper(token), wall=wall))
    return [sys.executable, str(script)]


def test_ctrl_c_on_the_host_removes_its_containers(client: Any, tmp_path: Path) -> None:
    campaign, token = f"test-sigint-{uuid.uuid4().hex[:8]}", hostprocs.new_token()
    with host_process(tmp_path, _host_script(tmp_path, campaign, token, wall=120), token) as host:
        assert len(containers_of(client, LABEL_CAMPAIGN, campaign)) == 1
        host.send_signal(signal.SIGINT)
        assert host.wait(timeout=60) != 0
    assert "KeyboardInterrupt" in (tmp_path / "host.log").read_text()
    assert containers_of(client, LABEL_CAMPAIGN, campaign, all=True) == []
    hostprocs.wait_until(lambda: not hostprocs.live_pids_with_arg(token), 10, "the job to die")


def test_sigterm_stops_optforge_evaluate_and_removes_its_containers(
        client: Any, cache: Path, tmp_path: Path) -> None:
    token = hostprocs.new_token()
    path = tmp_path / "sleeper.py"
    path.write_text(sleeper(token))
    argv = [sys.executable, "-m", "optforge.agent.cli.main", "evaluate", str(path), "--tier", "0",
            "--sandbox", "docker", "--workers", "1"]
    with _env(OPTFORGE_CACHE_DIR=str(cache)), host_process(tmp_path, argv, token) as host:
        owner = f"{socket.gethostname()}:{host.pid}"
        assert len(containers_of(client, LABEL_OWNER, owner)) == 1
        host.send_signal(signal.SIGTERM)
        assert host.wait(timeout=60) == 130
    assert "interrupted" in (tmp_path / "host.log").read_text()
    assert containers_of(client, LABEL_OWNER, owner, all=True) == []
    hostprocs.wait_until(lambda: not hostprocs.live_pids_with_arg(token), 10, "the job to die")


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_containers_of_a_sigkilled_host_exit_by_themselves_and_the_next_run_removes_them(
        client: Any, tmp_path: Path) -> None:
    campaign, token = f"test-sigkill-{uuid.uuid4().hex[:8]}", hostprocs.new_token()
    wall = 4.0
    with host_process(tmp_path, _host_script(tmp_path, campaign, token, wall=wall), token) as host:
        host.kill()  # no finalizer, no atexit: only the closed attach stream tells the worker
        host.wait()
    [left] = containers_of(client, LABEL_CAMPAIGN, campaign, all=True)
    # The worker reads end-of-file once the job has timed out, and the container exits.
    deadline = time.monotonic() + wall + 30
    while left.status != "exited" and time.monotonic() < deadline:
        time.sleep(0.5)
        left.reload()
    assert left.status == "exited", left.status
    assert hostprocs.live_pids_with_arg(token) == []
    with DockerRunner(workers=1, campaign=campaign, memory_mb=512) as next_run:
        remaining = {c.id for c in containers_of(client, LABEL_CAMPAIGN, campaign, all=True)}
        assert left.id not in remaining
        assert len(remaining) == 1 and next_run.runner_id
    assert containers_of(client, LABEL_CAMPAIGN, campaign, all=True) == []


# -- the command line -------------------------------------------------------------------------


def test_optforge_evaluate_runs_in_docker_end_to_end(
        runner: DockerRunner, cache: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(cache))
    sgd = REPO / "tasks" / "baselines" / "optimizers" / "sgd.py"
    code = cli.main(["evaluate", str(sgd), "--tier", "0", "--sandbox", "docker", "--workers", "1"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "tier 0" in out.out


def test_a_scaling_rule_trains_in_containers_to_the_same_bits_as_in_this_process(runner: DockerRunner) -> None:
    """The scaling task's training text ships inside the package the containers mount, and its runs
    there match this process's: muP scores exactly 1 against its own in-process runs."""
    from optforge.agent.config import EvaluationConfig
    from optforge.agent.evaluation.evaluate import run_tier0
    from optforge.agent.evaluation.scaling import evaluate_scaling
    from optforge.tasks.baselines import baseline_source
    from tests.agent.test_scaling_evaluation import KIND, TASK, mup_as_reference

    config, source = EvaluationConfig(), baseline_source(KIND, "mup")
    screened = run_tier0(source, KIND, runner, config)
    result = evaluate_scaling(source, KIND, 1, screened, runner, config, task=TASK, ref=mup_as_reference())
    assert result.status == "ok", result.error
    assert result.score == pytest.approx(1.0, abs=1e-5)


def test_evaluate_without_an_engine_says_how_to_start_one(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    sgd = REPO / "tasks" / "baselines" / "optimizers" / "sgd.py"
    assert cli.main(["evaluate", str(sgd), "--tier", "0", "--sandbox", "docker"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("optforge: error: no Docker engine at unix:///nonexistent.sock")
    assert "start dockerd" in line


def test_a_missing_image_is_one_line_with_the_build_command(
        client: Any, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    bogus = f"optforge-sandbox:missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(SandboxUnavailable, match="optforge sandbox build --offline --tag"), \
            open_runner(SandboxConfig(backend="docker", image=bogus), cache):
        pass
    config = tmp_path / "campaign.toml"
    config.write_text(f'[evaluation.sandbox]\nbackend = "docker"\nimage = "{bogus}"\n')
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(cache))
    code = cli.main(["run", "--config", str(config), "--dir", str(tmp_path / "run"),
                     "--proposer", "mutate", "--budget", "1"])
    [line] = capsys.readouterr().err.splitlines()
    assert code == 2
    assert line == (f"optforge: error: image {bogus} is missing: run `optforge sandbox build "
                    f"--offline --tag {bogus}` (or without --offline where images can be pulled)")
