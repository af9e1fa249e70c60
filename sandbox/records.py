"""The sandbox's records (Limits, Job, RunResult) and the Runner protocol: the whole public contract.

A job names a *trusted* entry function by import path; the untrusted candidate source travels inside
its JSON payload. The entry contract (implemented by e.g. ``optforge.tasks.jobs:run_job``)::

    def run_job(payload: dict, scratch: pathlib.Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]

It runs in a confined, forked child with ``scratch`` as its working directory. It should compile
candidate source with a filename starting with ``"<candidate"`` so that errors are reported as
"... (line N of candidate)".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:  # keeps `import optforge.sandbox` light; torch is only needed to read results
    import torch

Status = Literal["ok", "error", "timeout", "oom", "crashed", "sandbox_error"]
STATUSES: tuple[Status, ...] = ("ok", "error", "timeout", "oom", "crashed", "sandbox_error")


@dataclass(frozen=True)
class Limits:
    """Resource limits for one job; enforced on the job process (and everything it starts)."""

    wall_seconds: float = 120.0
    memory_mb: int = 4096  # address-space cap (RLIMIT_AS); includes ~0.7 GB already mapped by torch
    max_processes: int = 64  # processes *and threads* the job may have at once (RLIMIT_NPROC)
    max_file_mb: int = 256  # largest file the job may write (RLIMIT_FSIZE)
    max_output_bytes: int = 65536  # tail of the job's stdout+stderr kept in RunResult.output_tail

    def __post_init__(self) -> None:
        wall = self.wall_seconds
        if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not (math.isfinite(wall) and wall > 0):
            raise ValueError(f"Limits.wall_seconds must be a positive number, got {self.wall_seconds!r}")
        for name in ("memory_mb", "max_processes", "max_file_mb", "max_output_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class Job:
    """One unit of sandboxed work: a trusted entry ("module:function") and its JSON payload."""

    entry: str
    payload: dict[str, Any]
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        module, sep, function = self.entry.partition(":")
        if not (module and sep and function):
            raise ValueError(f"Job.entry must look like 'package.module:function', got {self.entry!r}")


@dataclass(frozen=True)
class RunResult:
    """What came back from one job. Failures are data: see ``status`` and ``error``."""

    status: Status
    tensors: dict[str, torch.Tensor]  # empty unless ok
    meta: dict[str, Any]  # JSON meta returned by the entry; empty unless ok
    error: str | None  # first error line; None when ok
    output_tail: str  # last Limits.max_output_bytes of the job's stdout+stderr
    wall_seconds: float


class Runner(Protocol):
    """Runs jobs somewhere safe. Implementations: ProcessRunner, DockerRunner.

    ``environment`` says where jobs run, for the record kept with every evaluation: the backend,
    and for Docker the image and its digest (e.g. {"sandbox": "process", "isolation": "bwrap"})."""

    environment: dict[str, str]

    def run(self, job: Job) -> RunResult: ...

    def run_many(self, jobs: Sequence[Job]) -> list[RunResult]:
        """Run concurrently on the runner's pool; results in job order."""
        ...

    def close(self) -> None: ...
