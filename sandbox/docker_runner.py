"""DockerRunner: warm sandbox workers in hardened containers, behind the Runner protocol.

    with DockerRunner(warmup=["optforge.tasks.jobs:warm"], data_dir=data, campaign="c1") as runner:
        results = runner.run_many(jobs)

One container per worker, started once; each job is a child forked inside it (the same worker as
the process backend), so Docker costs a container start per worker, not per candidate. The
container configuration is docker_config.py; the image contract is docker_image.py.

Every container carries labels naming its runner, campaign and owning host process. At start the
runner removes containers left by a dead run of the same campaign, or by any dead owner on this
host; at close (Ctrl-C and SIGTERM included, through the pool's finalizer) it removes its own.
If the host is SIGKILLed, each worker reads end-of-file on its stdin and its container exits after
the current job; the next start removes it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optforge.sandbox import heldout
from optforge.sandbox.docker_config import (
    DATA_DIR,
    LABEL_CAMPAIGN,
    LABEL_OWNER,
    LABEL_OWNER_START,
    LABEL_RUNNER,
    ContainerSettings,
    Gpus,
    container_uid,
)
from optforge.sandbox.docker_image import (
    PYTHON,
    code_mounts,
    connect,
    default_image,
    image_problems,
)
from optforge.sandbox.docker_worker import DockerWorker
from optforge.sandbox.errors import SandboxError, SandboxUnavailable
from optforge.sandbox.heldout import Fingerprint, Found
from optforge.sandbox.pool import PooledRunner


class DockerRunner(PooledRunner):
    """Runs jobs in warm worker containers.

    workers: pool size (default: one per CPU). warmup / data_dir / hidden_paths: as ProcessRunner
    (hidden_paths are host paths of held-out data sources; every copy of held-out data in the image
    and in what is mounted from the host is covered: container_masks). image: default the tag of
    this host's recipe (docker_image.default_image). campaign: a label that lets the next run of
    the same campaign remove containers this one leaked. gpus: None, "all", or a count of GPUs
    shared round-robin by the workers. memory_mb: the jobs' memory cap (the container gets a
    worker's headroom more). client: a docker SDK client (default: from the environment,
    $DOCKER_HOST).
    """

    def __init__(
        self,
        workers: int | None = None,
        warmup: Sequence[str] = (),
        data_dir: Path | None = None,
        hidden_paths: Sequence[Path] = (),
        image: str | None = None,
        campaign: str = "evaluate",
        gpus: Gpus = None,
        memory_mb: int = 4096,
        cpus: float = 1.0,
        client: Any = None,
    ) -> None:
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if data_dir is not None and not Path(data_dir).is_dir():
            raise ValueError(f"data_dir {data_dir} is not a directory")
        self._client = client or connect()
        self.image = image or default_image()
        problems = image_problems(self._client, self.image)
        if problems:
            raise SandboxUnavailable(problems[0].message)
        self.image_id: str = self._client.images.get(self.image).id
        self.environment = {"sandbox": "docker", "image": self.image, "image_id": self.image_id}
        remove_stale_containers(self._client, campaign)
        self.runner_id = uuid.uuid4().hex[:12]
        mounted = {host: m["bind"] for host, m in code_mounts().items()}
        data = str(Path(data_dir).resolve()) if data_dir is not None else None
        masks = container_masks(self._client, self.image, self.image_id,
                                [Path(p) for p in hidden_paths],
                                {**mounted, **({data: DATA_DIR} if data else {})})
        settings = ContainerSettings(
            image=self.image, runner_id=self.runner_id, campaign=campaign, owner=_owner(),
            extra_labels={LABEL_OWNER_START: process_start(os.getpid()) or ""},
            code_mounts=mounted, data_dir=data, hidden_paths=masks.dirs, hidden_files=masks.files,
            memory_mb=memory_mb, cpus=cpus, gpus=gpus, gpu_count=_host_gpu_count() if gpus else None)
        self.settings = settings
        slots = itertools.count()
        lock = threading.Lock()
        api_version = self._client.api.api_version

        def start_worker() -> DockerWorker:
            with lock:
                slot = next(slots)
            api = _api_client(api_version)  # one HTTP connection pool per worker thread
            return DockerWorker(api, settings, slot % self.workers,
                                container_uid(slot, os.getpid()), tuple(warmup))

        self._start_pool(start_worker, on_shutdown=self._remove_own_containers)

    def __enter__(self) -> DockerRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _remove_own_containers(self) -> None:
        """A last sweep by label: containers whose worker object was lost (a failed start...)."""
        remove_containers(self._client, {"label": f"{LABEL_RUNNER}={self.runner_id}"})


def _api_client(version: str) -> Any:
    import docker

    return docker.APIClient(version=version, timeout=120, **docker.utils.kwargs_from_env())


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _host_gpu_count() -> int | None:
    """GPUs visible on the host, to spread "all" over workers (None when unknown)."""
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.device_count())
    return None


def remove_containers(client: Any, filters: dict[str, str]) -> int:
    import docker

    removed = 0
    try:
        containers = client.api.containers(all=True, filters=filters)
    except docker.errors.DockerException:
        return 0
    for container in containers:
        with contextlib.suppress(docker.errors.DockerException):
            client.api.remove_container(container["Id"], force=True)
            removed += 1
    return removed


def remove_stale_containers(client: Any, campaign: str) -> int:
    """Remove containers whose owner process on this host is gone (pid and start time), and those
    of `campaign` from another host. Containers of live processes on this host are left alone."""
    import docker

    try:
        containers = client.api.containers(all=True, filters={"label": LABEL_RUNNER})
    except docker.errors.DockerException as exc:
        raise SandboxError(f"cannot list sandbox containers: {exc}") from None
    stale = [c["Id"] for c in containers if _is_stale(c.get("Labels") or {}, campaign)]
    for cid in stale:
        with contextlib.suppress(docker.errors.DockerException):
            client.api.remove_container(cid, force=True)
    return len(stale)


def _is_stale(labels: dict[str, str], campaign: str) -> bool:
    host, _, pid = labels.get(LABEL_OWNER, "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        started = labels.get(LABEL_OWNER_START)
        if started:  # the owner is alive iff its pid still runs the process that started then:
            # a live owner's containers are never touched, whatever its campaign (two
            # `optforge evaluate` runs at once share the campaign "evaluate")
            return process_start(int(pid)) != started
        return not _pid_alive(int(pid)) or (labels.get(LABEL_CAMPAIGN) == campaign
                                            and int(pid) != os.getpid())
    return labels.get(LABEL_CAMPAIGN) == campaign


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22); None if
    there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    return stat[stat.rindex(b")") + 2:].split()[19].decode()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# What image_copies found, per (image id, fingerprint, paths): an image does not change.
_PROBE_CACHE: dict[tuple[str, Fingerprint, tuple[str, ...]], Found] = {}


def image_copies(client: Any, image: str, image_id: str, fp: Fingerprint,
                 paths: Sequence[str] = ()) -> Found:
    """Held-out data in `image`: every copy `fp` describes anywhere in its file system (other
    Pythons' pydoc_data, a site-packages' sklearn/datasets/data, same-content files), and which of
    `paths` exist in it. Read once per image and process from a throwaway container that walks the
    whole image as root (so it sees at least what a worker uid can), with no network and no
    capability but reading. The probe is heldout.py itself, run with `python -I -c`: optforge is
    not in the image, and the probe needs only the standard library."""
    import docker

    key = (image_id, fp, tuple(paths))
    if key in _PROBE_CACHE:
        return _PROBE_CACHE[key]
    if not fp and not paths:
        return Found()
    source = Path(heldout.__file__).read_text()
    try:
        output = client.containers.run(
            image, [PYTHON, "-I", "-c", source, fp.to_json(), json.dumps(list(paths))],
            network_mode="none", read_only=True, user="0:0", cap_drop=["ALL"],
            cap_add=["DAC_READ_SEARCH"], security_opt=["no-new-privileges"], remove=True)
        reply = json.loads(output.decode().strip().splitlines()[-1])
        found = Found(tuple(reply["dirs"]), tuple(reply["files"]))
    except (docker.errors.DockerException, ValueError, IndexError, KeyError) as exc:
        raise SandboxUnavailable(f"cannot search image {image} for held-out data ({exc}): "
                                 "rebuild it with `optforge sandbox build --offline`") from None
    _PROBE_CACHE[key] = found
    return found


def mounted_copies(mounts: dict[str, str], fp: Fingerprint) -> Found:
    """Held-out data in the host directories mounted into the container (`mounts`: host dir ->
    container dir), at their container paths."""
    dirs: list[str] = []
    files: list[str] = []
    for host, inside in mounts.items():
        found = heldout.find_copies([host], fp)
        for out, paths in ((dirs, found.dirs), (files, found.files)):
            out.extend(inside + path[len(host):] for path in paths)
    return Found(tuple(dirs), tuple(files))


def container_masks(client: Any, image: str, image_id: str, hidden_paths: Sequence[Path],
                    mounts: dict[str, str]) -> Found:
    """Everything to cover in the containers: held-out data in the image and in what is mounted."""
    fp = heldout.fingerprint(hidden_paths)
    # Held-out paths outside any Python install (a host directory of labels...) are looked for at
    # the same path in the image; those inside one are found by their place in it (fp.tails).
    as_is = [str(Path(p).resolve()) for p in hidden_paths if heldout.install_tail(p) is None]
    return image_copies(client, image, image_id, fp, as_is) + mounted_copies(mounts, fp)
