"""Builds the sandbox runner the evaluations use: exports the train splits once, warms the workers
with them, and hides the files held-out data could be rebuilt from."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from optforge.agent.config import ExecutorConfig, SandboxConfig, cache_dir
from optforge.sandbox import DockerRunner, ProcessRunner, Runner, SandboxUnavailable
from optforge.tasks.data import DATASETS, heldout_source_paths
from optforge.tasks.jobs import MANIFEST, export_train_splits
from optforge.tasks.kinds import kind_spec
from optforge.tasks.preference import prepare

WARMUP = ("optforge.tasks.jobs:warm",)


def train_data_dir(cache: pathlib.Path, preference: prepare.Prepared | None = None) -> pathlib.Path:
    """The exported train splits (and the preference task's training data, when given), written
    once per set of dataset versions."""
    versions = {name: make().version for name, make in DATASETS.items()}
    if preference is not None:
        versions["preference"] = preference.config.key()
    key = hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:16]
    directory = cache / "train-data" / key
    if not (directory / MANIFEST).exists():
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(dir=directory.parent, prefix=".export-"))
        export_train_splits(staging, preference)
        _world_readable(staging)
        try:
            staging.rename(directory)  # atomic: readers never see a half-written export
        except OSError:  # another process finished first; its export is identical
            shutil.rmtree(staging, ignore_errors=True)
    _world_readable(directory)  # an export made before this rule existed
    return directory


def _world_readable(directory: pathlib.Path) -> None:
    """Train splits are not secret, and sandboxes read them as an unprivileged uid (a container's,
    a job's): mkdtemp's 0700 would lock them out."""
    if directory.stat().st_mode & 0o777 != 0o755:
        directory.chmod(0o755)
        for path in directory.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)


def task_data(kind: str | None) -> prepare.Prepared | None:
    """What a `kind` campaign needs beyond the proxy tasks' splits: the preference task's set-up,
    prepared now (minutes, once; then cached) when the kind is scored on it."""
    if kind is None or kind_spec(kind).evaluation != "preference":
        return None
    return prepare.prepare(log=lambda line: print(line, flush=True))


@contextmanager
def open_runner(
    config: SandboxConfig,
    cache: pathlib.Path,
    campaign: str = "evaluate",
    kind: str | None = None,
    executor: ExecutorConfig | None = None,
    device: str = "cpu",
) -> Iterator[Runner]:
    """The configured backend, warmed with the train splits (and the data `kind` needs besides):
    on this machine, or on Ray actors across a cluster when `executor` says so, with a GPU per
    worker when `device` ("auto", "cpu" or "cuda", see EvaluationConfig) resolves to CUDA; the
    runner's environment then says device = "cuda" (sweeps.runner_device). `campaign` labels
    Docker containers, so that the next run of the same campaign can remove what a killed one left."""
    executor = executor or ExecutorConfig()
    resolved = resolve_device(device, config, executor)
    runner: Runner
    if executor.engine == "ray":
        runner = ray_runner(config, executor, campaign, kind, resolved)
    else:
        runner = local_runner(config, cache, campaign, kind, resolved)
    try:
        yield runner
    finally:
        runner.close()


def resolve_device(device: str, sandbox: SandboxConfig, executor: ExecutorConfig) -> str:
    """"cpu" or "cuda" for a `device` setting, from what the workers can have: a GPU on this
    machine (process backend), GPUs given to the containers (Docker), or GPUs per Ray actor."""
    if device == "cpu":
        return "cpu"
    if executor.engine == "ray" and sandbox.backend == "docker" and executor.num_gpus > 0:
        # Ray hands each actor a device through CUDA_VISIBLE_DEVICES; the Docker runner inside
        # would give its container host GPU 0 whatever Ray chose. Not wired yet: refuse.
        raise SandboxUnavailable("GPUs through Ray need the process sandbox on the GPU nodes: "
                                 "the Docker backend does not pass Ray's device to its container yet")
    if executor.engine == "ray":
        available, where = executor.num_gpus > 0, "[evaluation.executor] num_gpus is 0"
    elif sandbox.backend == "docker":
        available, where = sandbox.gpus is not None, "[evaluation.sandbox] gpus is not set"
    else:
        available, where = bool(local_gpus()), "torch sees no GPU on this machine"
    if device == "cuda" and not available:
        raise SandboxUnavailable(f"device = cuda, but {where}: give the workers a GPU or use "
                                 "device = \"auto\" or \"cpu\"")
    return "cuda" if available else "cpu"


def local_gpus() -> list[str]:
    """The GPUs this process may hand to workers: CUDA_VISIBLE_DEVICES when set (a Ray actor's
    share, a user's choice), else every device torch counts."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def local_runner(
    config: SandboxConfig, cache: pathlib.Path, campaign: str, kind: str | None,
    device: str = "cpu",
) -> Runner:
    data_dir = train_data_dir(cache, task_data(kind))
    runner: Runner
    if config.backend == "docker":
        runner = DockerRunner(
            workers=config.workers,
            warmup=WARMUP,
            data_dir=data_dir,
            hidden_paths=heldout_source_paths(),
            image=config.image,
            campaign=campaign,
            gpus=config.gpus,
            memory_mb=config.memory_mb,
        )
    else:
        runner = ProcessRunner(
            workers=config.workers,
            warmup=WARMUP,
            data_dir=data_dir,
            hidden_paths=heldout_source_paths(),
            allow_unisolated=config.allow_unisolated,
            gpus=local_gpus() if device == "cuda" else None,
        )
    if device != "cpu":
        runner.environment["device"] = device  # what sweeps.runner_device reads
    return runner


def ray_runner(
    config: SandboxConfig, executor: ExecutorConfig, campaign: str, kind: str | None,
    device: str = "cpu",
) -> Runner:
    """Ray actors that each build `node_runner` on their node. What travels: the sandbox settings,
    the kind and this driver's code identity, never data (each node exports its own train splits
    from its own optforge install, and hides the held-out sources as the local runner does)."""
    from optforge.sandbox.ray_runner import RayRunner  # ray is an optional extra

    node_kwargs = {
        "sandbox": config.model_copy(update={"workers": 1}).model_dump(mode="json"),
        "campaign": campaign,
        "kind": kind,
        "driver_code": code_commit(),
        "device": device,
    }
    return RayRunner(
        NODE_FACTORY,
        node_kwargs,
        address=executor.address,
        actors=config.workers,
        num_cpus=executor.num_cpus,
        num_gpus=executor.num_gpus,
        start_timeout_s=executor.start_timeout_s,
    )


NODE_FACTORY = "optforge.agent.evaluation.runtime:node_runner"


def node_runner(
    sandbox: dict[str, Any], campaign: str, kind: str | None, driver_code: str | None,
    device: str = "cpu",
) -> Runner:
    """Called by a Ray actor on its node: the local runner with one warm worker (on the GPU Ray
    gave the actor, through CUDA_VISIBLE_DEVICES, when `device` is "cuda"), after checking that
    this node scores with the same optforge code as the driver (a score must trace to one version
    of the tasks)."""
    here = code_commit()
    if driver_code is not None and here != driver_code:
        raise SandboxUnavailable(
            f"this node runs optforge {here}, the campaign's driver {driver_code}: install the "
            "same optforge version on every node"
        )
    return local_runner(SandboxConfig.model_validate(sandbox), cache_dir(), campaign, kind, device)


@functools.cache
def code_commit() -> str | None:
    """The git commit of the optforge source that scores candidates ("<sha>-dirty" with local
    edits), or the installed version when it does not run from a checkout; recorded with every
    evaluation so a score can be traced to the code that computed it."""
    root = pathlib.Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if sha.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=10,
            )
            return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        return "optforge-" + importlib.metadata.version("optforge")
    except importlib.metadata.PackageNotFoundError:
        return None
