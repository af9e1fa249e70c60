"""Tiny trusted entries for the sandbox tests (the real ones live in optforge.tasks.jobs).

``run_code`` executes a snippet as candidate code (filename "<candidate>"), which lets each test
state the candidate's behaviour inline. The snippet may set ``result`` (JSON meta) and ``tensors``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

WARM: dict[str, Any] = {"state": "cold", "pid": None}


def warm_up(data_dir: Path | None) -> None:
    """Load 'training data' into a module global, as optforge.tasks does."""
    WARM["state"] = (data_dir / "train.txt").read_text() if data_dir else "warm"
    WARM["pid"] = os.getpid()


def ok(payload: dict[str, Any], scratch: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    n = int(payload["n"])
    tensors = {"w": torch.arange(n, dtype=torch.float32), "eye": torch.eye(2, dtype=torch.float64)}
    meta = {"echo": payload, "warm": WARM["state"], "cwd": os.getcwd(), "scratch": str(scratch)}
    return tensors, meta


def run_code(payload: dict[str, Any], scratch: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    namespace: dict[str, Any] = {"__name__": "candidate"}
    exec(compile(payload["code"], "<candidate>", "exec"), namespace)
    return namespace.get("tensors", {}), namespace.get("result", {})


def bad_return(payload: dict[str, Any], scratch: Path) -> Any:
    return "not a tuple"


def broken_warm_up(data_dir: Path | None) -> None:
    raise RuntimeError("no training data here")


def ray_node(data_dir: str | None = None, fail: str | None = None) -> Any:
    """A Ray actor's local runner for tests/sandbox/test_ray_runner.py: one warm bubblewrap worker
    with this module's warm-up (``fail`` makes the node refuse to start, as a misconfigured node
    does)."""
    from optforge.sandbox import ProcessRunner

    if fail is not None:
        raise RuntimeError(fail)
    return ProcessRunner(workers=1, warmup=[f"{__name__}:warm_up"],
                         data_dir=Path(data_dir) if data_dir else None)
