"""The trusted entry points a sandbox worker calls: `warm` once per worker, `run_job` per job.

The host exports only the train splits (`export_train_splits`) to a directory the workers mount
read-only; held-out splits never leave the trusted process. A job returns weights and the training
curve as tensors; the host computes every metric that counts (scoring.py).

Payloads (JSON):
    {"action": "tier0", "kind": K, "source": S}
        -> meta: the Tier0Report fields
    {"action": "train", "kind": K, "source": S, "task": NAME, "lr": LR, "seeds": [..], "batched": B}
        -> tensors: "ckpt{i}/{param}" stacked [S, ...] weights per checkpoint, "train_loss" [steps, S]
        -> meta: {"diverged_at": step or None, "checkpoints": n}
"""

from __future__ import annotations

import dataclasses
import gc
import json
import pathlib
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .baselines import load_baseline
from .contracts import Candidate, load_candidate
from .data import DATASETS, Split
from .proxy import TASKS, ProxyTask, get_task
from .tier0 import Tier0Report, run_tier0
from .training import TrainResult, TrainSpec, train

_TRAIN_SPLITS: dict[str, Split] = {}
MANIFEST = "manifest.json"


def export_train_splits(directory: pathlib.Path) -> None:
    """Write every dataset's train split (only) to `directory` for the workers to load."""
    directory.mkdir(parents=True, exist_ok=True)
    versions = {}
    for name, make in DATASETS.items():
        dataset = make()
        save_file(
            {"x": dataset.train.x.contiguous(), "y": dataset.train.y.contiguous()},
            directory / f"{name}.safetensors",
        )
        versions[name] = dataset.version
    (directory / MANIFEST).write_text(json.dumps(versions, sort_keys=True))


def load_train_splits(data_dir: str | pathlib.Path) -> None:
    """Load the exported train splits into this process."""
    directory = pathlib.Path(data_dir)
    for name in json.loads((directory / MANIFEST).read_text()):
        tensors = load_file(directory / f"{name}.safetensors")
        _TRAIN_SPLITS[name] = Split(tensors["x"], tensors["y"])


def warm(data_dir: str | pathlib.Path | None) -> None:
    """Prepare a sandbox worker once, before any job is forked: data, torch's lazy set-up, GC."""
    if data_dir is None:
        raise RuntimeError("the tasks worker needs the exported train data directory (data_dir)")
    load_train_splits(data_dir)
    torch.set_num_threads(1)
    _exercise_every_task()
    # Move everything loaded so far out of the garbage collector's reach: a forked job's first
    # collection would otherwise touch (and so copy-on-write copy) every page of the warm heap.
    gc.collect()
    gc.freeze()


def _exercise_every_task() -> None:
    """Train each task for a step so that torch's lazy first-call work (dispatch caches, torch.func
    set-up; ~1.5 s measured) happens once here, in the warm parent, not in every forked job."""
    adamw = load_baseline("optimizer", "adamw")
    for task in TASKS:
        short = dataclasses.replace(task, steps=1, checkpoints=1)
        train(short, _TRAIN_SPLITS[task.dataset], TrainSpec(adamw, 1e-3), [0], batched=True)


def run_job(
    payload: dict[str, Any], scratch: pathlib.Path
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Run one job described by `payload` (see the module docstring)."""
    candidate = load_candidate(payload["source"], payload["kind"])
    if payload["action"] == "tier0":
        return {}, dataclasses.asdict(run_tier0(candidate))
    if payload["action"] == "train":
        return _train_job(candidate, payload)
    raise ValueError(f"unknown job action {payload['action']!r}")


def _train_job(
    candidate: Candidate, payload: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    task = get_task(payload["task"])
    if task.dataset not in _TRAIN_SPLITS:
        raise RuntimeError(
            f"train data for {task.dataset!r} was not loaded: the worker was not warmed"
        )
    spec = train_spec(candidate, float(payload["lr"]))
    result = train(
        task, _TRAIN_SPLITS[task.dataset], spec, list(payload["seeds"]), bool(payload["batched"])
    )
    return pack_train_result(result)


def pack_train_result(result: TrainResult) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A train job's reply (tensors, meta), as described in the module docstring."""
    tensors = {
        f"ckpt{i}/{name}": weights.contiguous()
        for i, checkpoint in enumerate(result.checkpoints)
        for name, weights in checkpoint.items()
    }
    tensors["train_loss"] = result.train_loss.contiguous()
    return tensors, {"diverged_at": result.diverged_at, "checkpoints": len(result.checkpoints)}


def train_spec(candidate: Candidate, lr: float) -> TrainSpec:
    """Optimizer candidates train with the task's own loss; loss and schedule candidates with AdamW."""
    if candidate.kind == "optimizer":
        return TrainSpec(optimizer=candidate, lr=lr)
    adamw = load_baseline("optimizer", "adamw")
    if candidate.kind == "loss":
        return TrainSpec(optimizer=adamw, lr=lr, loss=candidate)
    return TrainSpec(optimizer=adamw, lr=lr, schedule=candidate)


class InvalidResult(ValueError):
    """A job's result is not what the trusted side asked for. It came from the sandbox, where the
    candidate could have written it (forged files, a hijacked entry), so it is checked, not trusted."""


def unpack_checkpoints(
    tensors: dict[str, torch.Tensor], count: int
) -> list[dict[str, torch.Tensor]]:
    """Inverse of the tensor naming in `_train_job`: a list of name -> stacked weights."""
    checkpoints: list[dict[str, torch.Tensor]] = [{} for _ in range(count)]
    for key, value in tensors.items():
        if key.startswith("ckpt"):
            index, name = key[4:].split("/", 1)
            checkpoints[int(index)][name] = value
    return checkpoints


def checked_train_result(
    task_name: str, n_seeds: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> tuple[int | None, list[dict[str, torch.Tensor]]]:
    """(diverged_at, checkpoints) of a train job's result, after checking that it has exactly the
    checkpoints, parameter names, shapes and dtypes the task gives: InvalidResult otherwise."""
    task = get_task(task_name)
    diverged_at, count = meta.get("diverged_at"), meta.get("checkpoints")
    if diverged_at is not None and (type(diverged_at) is not int or not 0 <= diverged_at < task.steps):
        raise InvalidResult(
            f"diverged_at must be a step number below {task.steps} or null, got {diverged_at!r}"
        )
    expected = expected_checkpoints(task, diverged_at)
    if count != expected or type(count) is not int:
        raise InvalidResult(f"expected {expected} checkpoints, got {count!r}")
    shapes = {name: (n_seeds, *p.shape) for name, p in task.make_model().to("meta").named_parameters()}
    try:
        checkpoints = unpack_checkpoints(tensors, count)
    except (ValueError, IndexError) as exc:
        raise InvalidResult(f"unexpected tensor names: {exc}") from None
    for i, checkpoint in enumerate(checkpoints):
        if set(checkpoint) != set(shapes):
            raise InvalidResult(f"checkpoint {i} holds {sorted(checkpoint)}, expected {sorted(shapes)}")
        for name, weights in checkpoint.items():
            if tuple(weights.shape) != shapes[name] or weights.dtype != torch.float32:
                raise InvalidResult(f"checkpoint {i}: {name} is {weights.dtype} {tuple(weights.shape)}, "
                                    f"expected float32 {shapes[name]}")
    return diverged_at, checkpoints


def expected_checkpoints(task: ProxyTask, diverged_at: int | None) -> int:
    """Checkpoints a train job returns: all of the task's, or, when the loss became non-finite at
    step d (steps 0..d-1 done), those saved up to step d, the initial weights included."""
    steps = task.checkpoint_steps()
    return len(steps) if diverged_at is None else sum(1 for s in steps if s <= diverged_at)


def checked_tier0_report(meta: dict[str, Any]) -> Tier0Report:
    """The Tier0Report a tier-0 job returned, with every field's type checked (InvalidResult)."""
    types: dict[str, type | tuple[type, ...]] = {
        "passed": bool, "batch_safe": bool, "fingerprint": str, "state_tensors": int,
        "checks": list, "error": (str, type(None)),
    }
    if set(meta) != set(types):
        raise InvalidResult(f"tier-0 report fields {sorted(meta)}, expected {sorted(types)}")
    for name, expected in types.items():
        if not isinstance(meta[name], expected) or (expected is int and isinstance(meta[name], bool)):
            raise InvalidResult(f"tier-0 report field {name} has the wrong type: {meta[name]!r:.80}")
    return Tier0Report(**meta)
