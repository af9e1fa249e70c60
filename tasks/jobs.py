"""The trusted entry points a sandbox worker calls: `warm` once per worker, `run_job` per job.

The host exports only the train splits (`export_train_splits`) to a directory the workers mount
read-only; held-out splits never leave the trusted process. A job returns weights and the training
curve as tensors; the host computes every metric that counts (scoring.py).

Payloads (JSON):
    {"action": "tier0", "kind": K, "source": S}
        -> meta: the Tier0Report fields
    {"action": "train", "kind": K, "source": S, "task": NAME, "lrs": [..], "seeds": [..],
     "batching": "vmap_lr" | "vmap" | "loop", "device": "cpu" | "cuda" (optional, default cpu)}
        -> tensors: "ckpt{i}/{param}" stacked [L*S, ...] weights per checkpoint (member l*S + s is
           seed s at learning rate l), "train_loss" [steps, L*S]
        -> meta: {"diverged_at": [step or None per learning rate], "checkpoints": n}
    A train job runs exactly the batching it is given; one that vmap cannot run fails, and the
    evaluation retries it in the next, less batched mode (agent/evaluation/sweeps.py).
    {"action": "align", "kind": "preference_loss", "source": S, "betas": [..], "seed": s,
     "recipe": {"steps": .., "batch_pairs": .., "lr": .., "clip": ..}}
        -> tensors: "beta{i}/{param}" the policy's weights after aligning at betas[i]
        -> meta: {"stopped_at": [step or None per beta]} (tasks/preference/train.py)

    {"action": "scale", "kind": "scaling_rule", "source": S, "widths": [..], "base_width": w0,
     "base": {group: {"lr": .., "weight_decay": ..}}}
        -> meta: {"hyperparameters": {width: {group: [lr, weight_decay]}}}  (the rule's, guarded)
    {"action": "scale_train", "width": w, "seed": s, "hyperparameters": {group: [lr, wd]},
     "recipe": {...}}   no candidate: trusted training only (tasks/scaling/train.py)
        -> tensors: the ResMLP's weights; meta: {"diverged_at": step or None}

The preference task's data (reference weights, training pairs) is exported beside the splits, in
`preference/`, when it has been prepared; its evaluation prompts never are. The scaling task's
training text ships inside the package (tasks/scaling/data/); its held-out file is hidden.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import pathlib
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .baselines import load_baseline
from .contracts import Candidate, load_candidate
from .data import DATASETS, Split
from .kinds import kind_spec
from .preference import prepare as preference_prepare
from .preference import train as preference_train
from .preference.gpt import CharGPT, GPTConfig
from .proxy import TASKS, get_task
from .scaling import corpus as scaling_corpus
from .scaling import train as scaling_train
from .scaling.model import ResMLP
from .tier0 import Tier0Report, run_tier0
from .training import TrainResult, TrainSpec, train
from .vectorized import BATCHINGS

_TRAIN_SPLITS: dict[str, Split] = {}
MANIFEST = "manifest.json"


def export_train_splits(directory: pathlib.Path, preference: preference_prepare.Prepared | None = None) -> None:
    """Write every dataset's train split (only) to `directory` for the workers to load, and the
    preference task's training data when it is prepared."""
    directory.mkdir(parents=True, exist_ok=True)
    if preference is not None:
        preference_prepare.export(preference, directory)
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
    _load_preference_data(pathlib.Path(data_dir))
    _warm_scaling()
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
        # Two learning rates: the per-member-rate path has lazy set-up of its own.
        train(short, _TRAIN_SPLITS[task.dataset], TrainSpec(adamw, (1e-3, 2e-3)), [0], "vmap_lr")


def _load_preference_data(data_dir: pathlib.Path) -> None:
    """The preference task's reference and pairs, when exported; one short alignment step warms
    its code paths as `_exercise_every_task` does the proxy tasks'."""
    directory = data_dir / "preference"
    if not (directory / "config.json").is_file():
        return
    gpt = GPTConfig(**json.loads((directory / "config.json").read_text())["gpt"])
    data = preference_train.load_exported(directory, gpt)
    dpo = load_baseline("preference_loss", "dpo")
    preference_train.align(dpo, data, 0.1, 0, preference_train.TrainRecipe(steps=1))


def _warm_scaling() -> None:
    """The scaling task's training text (decompressed once, shared by every forked job) and one
    step of a narrow model."""
    ids = scaling_corpus.train_ids()
    hp = {g: (1e-3, 0.0) for g in ResMLP(8).groups()}
    scaling_train.train(8, hp, 0, ids, scaling_train.Recipe(steps=1, warmup=1))


def run_job(
    payload: dict[str, Any], scratch: pathlib.Path
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Run one job described by `payload` (see the module docstring)."""
    if payload["action"] == "scale_train":  # the one action that runs no candidate code
        return _scale_train_job(payload)
    candidate = load_candidate(payload["source"], payload["kind"])
    if payload["action"] == "tier0":
        return {}, dataclasses.asdict(run_tier0(candidate))
    if payload["action"] == "train":
        return _train_job(candidate, payload)
    if payload["action"] == "align":
        return _align_job(candidate, payload)
    if payload["action"] == "scale":
        return _scale_job(candidate, payload)
    raise ValueError(f"unknown job action {payload['action']!r}")


def _train_job(
    candidate: Candidate, payload: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    task = get_task(payload["task"])
    if task.dataset not in _TRAIN_SPLITS:
        raise RuntimeError(
            f"train data for {task.dataset!r} was not loaded: the worker was not warmed"
        )
    spec = train_spec(candidate, tuple(float(lr) for lr in payload["lrs"]))
    result = train(
        task, _TRAIN_SPLITS[task.dataset], spec, list(payload["seeds"]), str(payload["batching"]),
        device=job_device(payload),
    )
    return pack_train_result(result)


DEVICES = ("cpu", "cuda")


def job_device(payload: dict[str, Any]) -> str:
    """Where a train job runs: "cpu" (the default) or "cuda", which this worker must have. CUDA is
    first touched here, in the forked job: a CUDA context does not survive a fork, so the warm
    parent never creates one."""
    device = payload.get("device", "cpu")
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "this job asks for CUDA but its worker sees no GPU (CUDA_VISIBLE_DEVICES, the NVIDIA "
            "device nodes in the sandbox, or a CPU build of torch)"
        )
    return str(device)


def _align_job(
    candidate: Candidate, payload: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    data = preference_train.loaded()
    tensors: dict[str, torch.Tensor] = {}
    stopped: list[int | None] = []
    for i, beta in enumerate(payload["betas"]):
        recipe = preference_train.TrainRecipe(**payload["recipe"])
        run = preference_train.align(candidate, data, float(beta), int(payload["seed"]), recipe)
        tensors.update({f"beta{i}/{name}": w for name, w in run.weights.items()})
        stopped.append(run.stopped_at)
    return tensors, {"stopped_at": stopped}


def _scale_job(candidate: Candidate, payload: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from .kinds.scaling_rule import rule_table

    table = rule_table(candidate, tuple(int(w) for w in payload["widths"]), int(payload["base_width"]),
                       payload["base"])
    return {}, {"hyperparameters": {str(w): {g: list(v) for g, v in row.items()} for w, row in table.items()}}


def _scale_train_job(payload: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    recipe = scaling_train.Recipe(**payload["recipe"])
    run = scaling_train.train(int(payload["width"]), payload["hyperparameters"], int(payload["seed"]),
                              scaling_corpus.train_ids(), recipe)
    return run.weights, {"diverged_at": run.diverged_at}


def checked_scale_result(widths: list[int], meta: dict[str, Any]) -> dict[int, scaling_train.Hyperparameters]:
    """A scale job's table, checked: every width asked for, every group, values AdamW can use."""
    table = meta.get("hyperparameters")
    if set(meta) != {"hyperparameters"} or not isinstance(table, dict) or set(table) != {str(w) for w in widths}:
        raise InvalidResult(f"scale job must return hyperparameters for widths {widths}")
    checked = {}
    for width in widths:
        row = table[str(width)]
        if not isinstance(row, dict):
            raise InvalidResult(f"width {width}: expected a dict of groups, got {type(row).__name__}")
        try:
            checked[width] = scaling_train.checked_hyperparameters(row)
        except (TypeError, ValueError) as exc:
            raise InvalidResult(f"width {width}: {exc}") from None
    return checked


def checked_scale_train_result(
    width: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any], steps: int
) -> tuple[dict[str, torch.Tensor], int | None]:
    """A scale_train job's result, checked: exactly a width-`width` ResMLP's float32 weights, and
    where it diverged."""
    diverged = meta.get("diverged_at")
    if set(meta) != {"diverged_at"} or not (diverged is None or (type(diverged) is int and 0 <= diverged < steps)):
        raise InvalidResult(f"diverged_at must be a step below {steps} or null, got {diverged!r:.80}")
    shapes = {name: tuple(p.shape) for name, p in ResMLP(width).to("meta").state_dict().items()}
    if set(tensors) != set(shapes):
        raise InvalidResult(f"scale_train returned tensors {sorted(tensors)[:4]}..., expected a width-{width} ResMLP's")
    for name, w in tensors.items():
        if tuple(w.shape) != shapes[name] or w.dtype != torch.float32:
            raise InvalidResult(f"{name} is {w.dtype} {tuple(w.shape)}, expected float32 {shapes[name]}")
    return tensors, diverged


def checked_align_result(
    n_betas: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any], steps: int, gpt: GPTConfig
) -> list[tuple[dict[str, torch.Tensor], int | None]]:
    """An align job's result, checked: per beta, the policy's weights (exactly the char-GPT's names,
    shapes and float32) and where it stopped, else InvalidResult."""
    stopped = meta.get("stopped_at")
    if set(meta) != {"stopped_at"} or not isinstance(stopped, list) or len(stopped) != n_betas or not all(
        s is None or (type(s) is int and 0 <= s < steps) for s in stopped
    ):
        raise InvalidResult(f"stopped_at must hold {n_betas} step numbers below {steps} or nulls, got {stopped!r:.80}")
    shapes = {name: tuple(p.shape) for name, p in CharGPT(gpt).to("meta").state_dict().items()}
    expected = {f"beta{i}/{name}" for i in range(n_betas) for name in shapes}
    if set(tensors) != expected:
        raise InvalidResult(f"align job returned tensors {sorted(tensors)[:4]}..., expected the char-GPT's per beta")
    runs = []
    for i in range(n_betas):
        weights = {name: tensors[f"beta{i}/{name}"] for name in shapes}
        for name, w in weights.items():
            if tuple(w.shape) != shapes[name] or w.dtype != torch.float32:
                raise InvalidResult(f"beta {i}: {name} is {w.dtype} {tuple(w.shape)}, expected float32 {shapes[name]}")
        runs.append((weights, stopped[i]))
    return runs


def pack_train_result(result: TrainResult) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A train job's reply (tensors, meta), as described in the module docstring."""
    tensors = {
        f"ckpt{i}/{name}": weights.contiguous()
        for i, checkpoint in enumerate(result.checkpoints)
        for name, weights in checkpoint.items()
    }
    tensors["train_loss"] = result.train_loss.contiguous()
    return tensors, {"diverged_at": result.diverged_at, "checkpoints": len(result.checkpoints)}


def train_spec(candidate: Candidate, lrs: tuple[float, ...]) -> TrainSpec:
    """What a training job of this candidate runs: its kind decides (KindSpec.train_spec)."""
    return kind_spec(candidate.kind).train_spec(candidate, lrs)


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


@dataclass(frozen=True)
class CheckedRun:
    """A train job's result after checking: per learning rate, where it diverged and its
    checkpoints (name -> [S, ...] weights)."""

    diverged_at: list[int | None]
    checkpoints: list[list[dict[str, torch.Tensor]]]  # [learning rate][checkpoint] name -> [S, ...]


# The batching note is the first line of an error the candidate's code raised under vmap; it is
# shown to users, so its length is capped like any text that comes out of the sandbox.
MAX_NOTE_CHARS = 300


def checked_train_result(
    task_name: str, n_lrs: int, n_seeds: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> CheckedRun:
    """The checked result of a train job over `n_lrs` learning rates x `n_seeds` seeds: exactly the
    checkpoints, parameter names, shapes and dtypes the task gives, else InvalidResult."""
    task = get_task(task_name)
    diverged = meta.get("diverged_at")
    if not isinstance(diverged, list) or len(diverged) != n_lrs or not all(
        d is None or (type(d) is int and 0 <= d < task.steps) for d in diverged
    ):
        raise InvalidResult(
            f"diverged_at must hold {n_lrs} step numbers below {task.steps} or nulls, got {diverged!r:.80}"
        )
    last = None if None in diverged else max(diverged)
    count, expected = meta.get("checkpoints"), task.checkpoints_until(last)
    if count != expected or type(count) is not int:
        raise InvalidResult(f"expected {expected} checkpoints, got {count!r}")
    members = n_lrs * n_seeds
    shapes = {name: (members, *p.shape) for name, p in task.make_model().to("meta").named_parameters()}
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
    per_lr = [
        [{name: w[i * n_seeds : (i + 1) * n_seeds] for name, w in c.items()} for c in checkpoints]
        for i in range(n_lrs)
    ]
    return CheckedRun(list(diverged), per_lr)


def checked_tier0_report(meta: dict[str, Any]) -> Tier0Report:
    """The Tier0Report a tier-0 job returned, with every field's type checked (InvalidResult)."""
    types: dict[str, type | tuple[type, ...]] = {
        "passed": bool, "batching": str, "batching_note": (str, type(None)), "fingerprint": str,
        "state_tensors": int, "checks": list, "error": (str, type(None)),
    }
    if set(meta) != set(types):
        raise InvalidResult(f"tier-0 report fields {sorted(meta)}, expected {sorted(types)}")
    for name, expected in types.items():
        if not isinstance(meta[name], expected) or (expected is int and isinstance(meta[name], bool)):
            raise InvalidResult(f"tier-0 report field {name} has the wrong type: {meta[name]!r:.80}")
    if meta["batching"] not in BATCHINGS:
        raise InvalidResult(f"tier-0 batching must be one of {', '.join(BATCHINGS)}")
    return Tier0Report(**{**meta, "batching_note": (meta["batching_note"] or "")[:MAX_NOTE_CHARS] or None})
