"""Builds the sandbox runner the evaluations use: exports the train splits once, warms the workers
with them, and hides the files held-out data could be rebuilt from."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from optforge.agent.config import SandboxConfig
from optforge.sandbox import DockerRunner, ProcessRunner, Runner
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
    config: SandboxConfig, cache: pathlib.Path, campaign: str = "evaluate", kind: str | None = None
) -> Iterator[Runner]:
    """The configured backend, warmed with the train splits (and the data `kind` needs besides).
    `campaign` labels Docker containers, so that the next run of the same campaign can remove what
    a killed one left."""
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
        )
    try:
        yield runner
    finally:
        runner.close()


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
