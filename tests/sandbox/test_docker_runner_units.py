"""The Docker runner's rules that need no engine: which leftover containers a new runner removes,
how a job that lost a process to its container's OOM killer is classified, and how the docker
tests behave without an engine (skip locally, fail under CI)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from optforge.sandbox import docker_runner, jobchild, worker
from optforge.sandbox.docker_config import (
    LABEL_CAMPAIGN,
    LABEL_OWNER,
    LABEL_OWNER_START,
    LABEL_RUNNER,
)
from tests.sandbox import docker_fixtures


class FakeAPI:
    """The two engine calls the sweep makes: list labelled containers, remove one."""

    def __init__(self, labels: dict[str, dict[str, str]]) -> None:
        self.labels = labels
        self.removed: list[str] = []

    def containers(self, all: bool, filters: dict[str, str]) -> list[dict[str, Any]]:
        assert all and filters == {"label": LABEL_RUNNER}
        return [{"Id": cid, "Labels": labels} for cid, labels in self.labels.items()]

    def remove_container(self, cid: str, force: bool) -> None:
        self.removed.append(cid)


class FakeClient:
    def __init__(self, labels: dict[str, dict[str, str]]) -> None:
        self.api = FakeAPI(labels)


def _labels(campaign: str, pid: int, start: str | None, host: str | None = None) -> dict[str, str]:
    labels = {LABEL_RUNNER: "r", LABEL_CAMPAIGN: campaign,
              LABEL_OWNER: f"{host or socket.gethostname()}:{pid}"}
    if start is not None:
        labels[LABEL_OWNER_START] = start
    return labels


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_new_runner_removes_dead_owners_and_remote_same_campaign_containers_only() -> None:
    with subprocess.Popen(["sleep", "60"]) as live:
        try:
            started = docker_runner.process_start(live.pid)
            assert started is not None
            client = FakeClient({
                "dead": _labels("other", _dead_pid(), None),
                "dead-with-start": _labels("c", _dead_pid(), "12345"),
                "reused-pid": _labels("other", live.pid, str(int(started) + 1)),
                "live-same-campaign": _labels("c", live.pid, started),
                "live-other-campaign": _labels("other", live.pid, started),
                "remote-same-campaign": _labels("c", 1, "1", host="elsewhere"),
                "remote-other-campaign": _labels("other", 1, "1", host="elsewhere"),
            })
            assert docker_runner.remove_stale_containers(client, "c") == 4
        finally:
            live.kill()
    assert sorted(client.api.removed) == [
        "dead", "dead-with-start", "remote-same-campaign", "reused-pid"]


def test_process_start_names_a_live_process_and_none_for_a_dead_one() -> None:
    assert docker_runner.process_start(os.getpid()) == docker_runner.process_start(os.getpid())
    assert docker_runner.process_start(_dead_pid()) is None


def _outcome(exit_code: int, cgroup_oom_kill: bool) -> worker.Outcome:
    return worker.Outcome(tail_cap=1000, exit_code=exit_code, cgroup_oom_kill=cgroup_oom_kill)


def test_a_job_that_lost_a_process_to_the_containers_oom_killer_is_oom(tmp_path: Path) -> None:
    (tmp_path / jobchild.ERROR_FILE).write_text('{"status": "error", "error": "RuntimeError: child died"}')
    limits = {"wall_seconds": 10, "memory_mb": 1024, "max_file_mb": 1}
    status, error = worker.classify(_outcome(jobchild.EXIT_FAILED, True), tmp_path, tmp_path, limits)
    assert status == "oom" and "OOM killer" in (error or "")
    # Without an OOM kill in the container, the job's own report stands.
    status, error = worker.classify(_outcome(jobchild.EXIT_FAILED, False), tmp_path, tmp_path, limits)
    assert (status, error) == ("error", "RuntimeError: child died")


def test_docker_tests_skip_without_an_engine_locally_and_fail_under_ci(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Docker engine at unix:///nonexistent.sock"):
        docker_fixtures.engine_with_image()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        docker_fixtures.engine_with_image()
