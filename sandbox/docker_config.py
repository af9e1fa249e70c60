"""The hardened configuration of one sandbox container, as plain data (no Docker engine needed).

`container_config` turns the runner's settings into the keyword arguments of docker-py's
`APIClient.create_container` and `create_host_config`, so tests can check every hardening option
without a daemon, and the Docker worker only has to pass them on.

Why each option (see THREAT_MODEL.md):
  network_mode none         no network at all, not even a loopback shared with the host
  read_only + tmpfs         the image cannot be changed; scratch (/sandbox, /tmp) is memory, sized,
                            nosuid/nodev, and dies with the container
  cap_drop ALL, no-new-privileges, a numeric non-root user
                            nothing privileged inside, setuid binaries do not elevate
  pids / memory / CPUs      fork bombs, memory bombs and busy loops hit the container's cgroup
  init                      a real PID 1 reaps what escapes the worker's own reaping
  log limits                a flood on the worker's stderr cannot fill the host's disk
  environment               an allow-list; nothing of the host's environment (API keys) gets in
  mounts                    the host's optforge code and the train data, read-only; every copy of
                            held-out data found in the image or in those mounts (docker_runner.
                            container_masks) is covered: directories by an empty read-only tmpfs,
                            files by /dev/null
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optforge.sandbox.docker_image import CODE_ROOT, PYTHON

SANDBOX_ROOT = "/sandbox"  # the worker's root: job/ and out/ live here (a tmpfs)
DATA_DIR = "/opt/optforge/data"  # the exported train splits, read-only
LABEL_RUNNER = "org.optforge.runner"  # every container of one DockerRunner
LABEL_CAMPAIGN = "org.optforge.campaign"  # the campaign (or "evaluate") that started it
LABEL_OWNER = "org.optforge.owner"  # "<hostname>:<pid>" of the host process that owns it
# The owner's start time (/proc/<pid>/stat, clock ticks since boot): with the pid, it names the
# process, so a live owner is told apart from a dead one whose pid was reused.
LABEL_OWNER_START = "org.optforge.owner-start"
# Base of the containers' numeric user ids: far above human, system and subuid ranges, and distinct
# per container so that RLIMIT_NPROC (counted per uid, host-wide) is never shared between jobs.
CONTAINER_UID_BASE = 1_500_000_000
WORKER_HEADROOM_MB = 1536  # the worker itself: interpreter, torch, warm data, on top of a job's cap
Gpus = str | int | None  # None: no GPU; "all"; or a count of GPUs shared round-robin by workers


@dataclass(frozen=True)
class ContainerSettings:
    image: str
    runner_id: str
    campaign: str
    owner: str
    code_mounts: Mapping[str, str]  # host package dir -> container dir (read-only)
    data_dir: str | None = None  # host dir of the train splits, mounted read-only at DATA_DIR
    hidden_paths: Sequence[str] = ()  # container dirs covered by an empty read-only tmpfs
    hidden_files: Sequence[str] = ()  # container files covered by /dev/null (read-only)
    memory_mb: int = 4096  # the jobs' address-space cap; the container gets WORKER_HEADROOM_MB more
    cpus: float = 1.0
    pids: int = 256
    scratch_mb: int = 1024
    gpus: Gpus = None
    gpu_count: int | None = None  # GPUs on the host, when known: spreads "all" over workers
    extra_labels: Mapping[str, str] = field(default_factory=dict)


def worker_env(gpu: str | None) -> dict[str, str]:
    """The container's whole environment (the image adds only PYTHONPATH and friends)."""
    env = {
        "PATH": f"{PYTHON.rsplit('/', 1)[0]}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": SANDBOX_ROOT,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": CODE_ROOT,
    }
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def gpu_assignment(gpus: Gpus, slot: int, gpu_count: int | None) -> tuple[list[dict[str, Any]], str | None]:
    """(device requests, CUDA_VISIBLE_DEVICES) for worker ``slot``: one GPU per worker,
    round-robin, so two workers never fight over one device by accident."""
    if gpus is None:
        return [], None
    if gpus == "all":
        request = {"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]],
                   "Options": {}}
        return [request], (str(slot % gpu_count) if gpu_count else None)
    if isinstance(gpus, int) and gpus > 0:
        device = str(slot % gpus)
        request = {"Driver": "", "Count": 0, "DeviceIDs": [device], "Capabilities": [["gpu"]],
                   "Options": {}}
        return [request], "0"  # the container sees only its own device, as number 0
    raise ValueError(f"gpus must be None, 'all' or a positive count, got {gpus!r}")


def container_uid(slot: int, owner_pid: int) -> int:
    """A uid of this container's own: RLIMIT_NPROC counts a uid's tasks across the whole host."""
    return CONTAINER_UID_BASE + (owner_pid % 100_000) * 1000 + slot % 1000


def container_config(settings: ContainerSettings, slot: int, uid: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(create_container kwargs without host_config, create_host_config kwargs)."""
    device_requests, gpu = gpu_assignment(settings.gpus, slot, settings.gpu_count)
    labels = {LABEL_RUNNER: settings.runner_id, LABEL_CAMPAIGN: settings.campaign,
              LABEL_OWNER: settings.owner, **settings.extra_labels}
    create = {
        "image": settings.image,
        "command": [PYTHON, "-m", "optforge.sandbox.worker"],
        "user": f"{uid}:{uid}",
        "environment": worker_env(gpu),
        "labels": labels,
        "working_dir": SANDBOX_ROOT,
        "hostname": "sandbox",
        "stdin_open": True,  # the protocol's host -> worker channel
        # Not detached: docker-py then sets StdinOnce, so when the host's attach connection goes
        # away (the host died), the worker reads end-of-file and the container exits.
        "detach": False,
        "tty": False,
        "network_disabled": True,
    }
    binds = {host: {"bind": inside, "mode": "ro"} for host, inside in settings.code_mounts.items()}
    if settings.data_dir is not None:
        binds[settings.data_dir] = {"bind": DATA_DIR, "mode": "ro"}
    tmpfs = {
        SANDBOX_ROOT: f"rw,nosuid,nodev,size={settings.scratch_mb}m,uid={uid},gid={uid},mode=0700",
        # Not writable by the job (root-owned 0755): jobs get TMPDIR in their own scratch, so
        # nothing can be left here for the next job.
        "/tmp": "rw,nosuid,nodev,noexec,size=1m,mode=0755",
        **{path: "ro,nosuid,nodev,noexec,size=4k,mode=0555" for path in settings.hidden_paths},
    }
    # Held-out files found outside a masked directory: /dev/null bound over each, read-only.
    mounts = [{"Type": "bind", "Source": "/dev/null", "Target": path, "ReadOnly": True}
              for path in settings.hidden_files]
    memory = f"{settings.memory_mb + WORKER_HEADROOM_MB}m"
    host = {
        "network_mode": "none",
        "read_only": True,
        "tmpfs": tmpfs,
        "binds": binds,
        "mounts": mounts or None,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": settings.pids,
        "mem_limit": memory,
        "memswap_limit": memory,  # no swap: a memory bomb is killed, not paged out slowly
        "nano_cpus": int(settings.cpus * 1e9),
        "init": True,
        "ipc_mode": "private",
        "shm_size": "64m",
        "log_config": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}},
        "ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}],
        "device_requests": device_requests or None,
    }
    return create, host
