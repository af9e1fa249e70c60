"""ProcessRunner: a pool of warm sandbox worker processes (bubblewrap) behind the Runner protocol.

    with ProcessRunner(warmup=["optforge.tasks.jobs:warm_up"], data_dir=data) as runner:
        results = runner.run_many(jobs)

The pool itself (thread safety, replacement of dead workers) is sandbox/pool.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from optforge.sandbox.host_worker import WorkerProcess, WorkerSettings
from optforge.sandbox.isolation import (
    Isolation,
    choose_isolation,
    heldout_copies,
    warn_unisolated,
)
from optforge.sandbox.pool import PooledRunner
from optforge.sandbox.scratch import force_rmtree


class ProcessRunner(PooledRunner):
    """Runs jobs in warm worker processes, isolated with bubblewrap when available.

    workers: pool size (default: one per CPU). warmup: "module:function" entries each worker calls
    once with ``data_dir`` before its first job (load data into module globals there). hidden_paths:
    held-out data sources, the archive... masked (empty) inside the sandbox, and with them every
    copy of held-out data the sandbox could see (same content anywhere, or the same place in any
    Python install: isolation.heldout_copies). isolation: "auto" uses bubblewrap and raises
    SandboxUnavailable without it unless allow_unisolated=True; "bwrap" requires it; "none" (needs
    allow_unisolated=True) runs plain processes. scratch_root: where the per-worker scratch
    directories live (default: the system temp dir); removed on close(). gpus: the devices (CUDA
    ordinals or UUIDs) the workers get, one per worker in turn (a replacement takes the next); with
    none, workers see no GPU at all.
    """

    def __init__(
        self,
        workers: int | None = None,
        warmup: Sequence[str] = (),
        data_dir: Path | None = None,
        hidden_paths: Sequence[Path] = (),
        isolation: Literal["auto", "bwrap", "none"] = "auto",
        allow_unisolated: bool = False,
        scratch_root: Path | None = None,
        gpus: Sequence[str] | None = None,
    ) -> None:
        self.isolation: Isolation = choose_isolation(isolation, allow_unisolated)
        if self.isolation == "none":
            warn_unisolated(stacklevel=2)  # blame our caller's line
        self.environment = {"sandbox": "process", "isolation": self.isolation}
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if data_dir is not None and not Path(data_dir).is_dir():
            raise ValueError(f"data_dir {data_dir} is not a directory")
        hidden = [Path(p) for p in hidden_paths]
        if self.isolation == "bwrap":
            resolved = Path(data_dir).resolve() if data_dir is not None else None
            hidden += [Path(p) for p in heldout_copies(hidden, resolved, os.environ.get("HOME"))]
        scratch = Path(tempfile.mkdtemp(prefix="optforge-sandbox-", dir=scratch_root))
        os.chmod(scratch, 0o711)  # traversable by the unprivileged job uid
        settings = WorkerSettings(
            isolation=self.isolation, bwrap=shutil.which("bwrap"), warmup=tuple(warmup),
            data_dir=Path(data_dir).resolve() if data_dir is not None else None,
            hidden_paths=tuple(dict.fromkeys(hidden)), scratch_root=scratch)
        if gpus:
            self.environment["gpus"] = ",".join(gpus)
        self._start_pool(_worker_factory(settings, list(gpus or [])),
                         on_shutdown=functools.partial(_remove_scratch, scratch))

    def __enter__(self) -> ProcessRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _worker_factory(settings: WorkerSettings, gpus: list[str]) -> Callable[[], WorkerProcess]:
    """Workers with `settings`, each given the next of `gpus` in turn (or none)."""
    if not gpus:
        return functools.partial(WorkerProcess, settings)
    turn = itertools.count()

    def start() -> WorkerProcess:
        return WorkerProcess(dataclasses.replace(settings, gpu=gpus[next(turn) % len(gpus)]))

    return start


def _remove_scratch(scratch: Path) -> None:
    with contextlib.suppress(OSError):
        force_rmtree(scratch)
