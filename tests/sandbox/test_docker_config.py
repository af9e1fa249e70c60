"""The Docker sandbox's container configuration, checked without a daemon: every hardening option
is present, docker-py accepts it, GPUs are spread one per worker, and no host secret gets in."""

from __future__ import annotations

import docker
import pytest

from optforge.sandbox.docker_config import (
    DATA_DIR,
    SANDBOX_ROOT,
    ContainerSettings,
    container_config,
    container_uid,
    gpu_assignment,
)
from optforge.sandbox.docker_image import CODE_ROOT, PYTHON

API_VERSION = "1.41"  # Docker 20.10, the engine Debian ships


def settings(**overrides: object) -> ContainerSettings:
    base: dict = dict(
        image="optforge-sandbox:test", runner_id="r1", campaign="runs/c1", owner="host:42",
        code_mounts={"/src/sandbox": f"{CODE_ROOT}/optforge/sandbox"}, data_dir="/cache/train",
        hidden_paths=("/opt/optforge/venv/lib/python3.11/site-packages/sklearn/datasets/data",),
        memory_mb=2048,
    )
    base.update(overrides)
    return ContainerSettings(**base)  # type: ignore[arg-type]


def test_the_container_is_hardened_by_default() -> None:
    create, host = container_config(settings(), slot=0, uid=container_uid(0, 42))
    assert host["network_mode"] == "none" and create["network_disabled"] is True
    assert host["read_only"] is True
    assert host["cap_drop"] == ["ALL"] and "cap_add" not in host
    assert host["security_opt"] == ["no-new-privileges"]
    assert host["init"] is True
    assert host["pids_limit"] > 0 and host["nano_cpus"] == 1_000_000_000
    assert host["mem_limit"] == host["memswap_limit"]  # no swap to hide a memory bomb in
    assert host["log_config"]["Config"]["max-size"] == "1m"
    uid = int(create["user"].split(":")[0])
    assert uid >= 1_000_000 and create["user"] == f"{uid}:{uid}"  # numeric, non-root, no login
    assert create["command"] == [PYTHON, "-m", "optforge.sandbox.worker"]
    assert create["stdin_open"] and not create["tty"]


def test_only_scratch_is_writable_and_every_input_is_mounted_read_only() -> None:
    create, host = container_config(settings(), slot=0, uid=1_500_000_001)
    assert {m["mode"] for m in host["binds"].values()} == {"ro"}
    assert host["binds"]["/cache/train"]["bind"] == DATA_DIR
    assert host["binds"]["/src/sandbox"]["bind"] == f"{CODE_ROOT}/optforge/sandbox"
    assert "uid=1500000001" in host["tmpfs"][SANDBOX_ROOT]
    assert "mode=0755" in host["tmpfs"]["/tmp"]  # root-owned: a job cannot leave files there
    hidden = "/opt/optforge/venv/lib/python3.11/site-packages/sklearn/datasets/data"
    assert host["tmpfs"][hidden].startswith("ro,")
    assert create["working_dir"] == SANDBOX_ROOT


def test_no_host_environment_reaches_the_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    create, _ = container_config(settings(), slot=0, uid=1_500_000_000)
    env = create["environment"]
    assert set(env) <= {"PATH", "LANG", "HOME", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                        "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH",
                        "CUDA_VISIBLE_DEVICES"}
    assert "sk-test-not-a-real-key" not in repr(create)


def test_labels_name_the_runner_campaign_and_owner() -> None:
    create, _ = container_config(settings(), slot=0, uid=1_500_000_000)
    assert create["labels"] == {"org.optforge.runner": "r1", "org.optforge.campaign": "runs/c1",
                                "org.optforge.owner": "host:42"}


@pytest.mark.parametrize("gpus", [None, "all", 2])
def test_docker_py_accepts_the_configuration(gpus: object) -> None:
    create, host = container_config(settings(gpus=gpus, gpu_count=2), slot=1, uid=1_500_000_001)
    config = docker.types.HostConfig(version=API_VERSION, **host)  # validates like create would
    assert config["NetworkMode"] == "none" and config["ReadonlyRootfs"] is True
    assert config["CapDrop"] == ["ALL"] and config["Init"] is True
    container = docker.types.ContainerConfig(API_VERSION, **create)
    assert container["OpenStdin"] and container["StdinOnce"]  # EOF reaches the worker when we go


def test_gpus_are_spread_one_per_worker() -> None:
    assert gpu_assignment(None, 3, None) == ([], None)
    requests, visible = gpu_assignment(2, 3, None)
    assert requests[0]["DeviceIDs"] == ["1"] and visible == "0"  # worker 3 gets device 3 % 2
    requests, visible = gpu_assignment("all", 3, 2)
    assert requests[0]["Count"] == -1 and visible == "1"
    _, env_visible = gpu_assignment("all", 0, None)
    assert env_visible is None  # unknown count: let the container see them all
    create, host = container_config(settings(gpus=2), slot=1, uid=1_500_000_001)
    assert create["environment"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert host["device_requests"][0]["Capabilities"] == [["gpu"]]
    with pytest.raises(ValueError, match="gpus must be"):
        gpu_assignment(0, 0, None)


def test_container_uids_differ_between_live_workers() -> None:
    uids = {container_uid(slot, pid) for slot in range(8) for pid in (41, 42, 99_999)}
    assert len(uids) == 24
