"""Training on a proxy task, many seeds at once.

Seeds train batched as stacked weights: every parameter gets a leading seed dimension
(torch.func.stack_module_state) and the model runs under torch.func.vmap. An optimizer candidate then
sees stacked tensors; that is only correct for update rules that act on each seed's slice
independently, which tier 0 checks ("batch-safe"). Other candidates take the loop fallback: one seed
at a time through exactly the same code with a seed dimension of one.

Seed s of a task always means the same initial weights and the same minibatch order, whatever the
candidate: comparisons between candidates are paired by seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from .adapters import CandidateOptimizer, candidate_scheduler
from .contracts import Candidate
from .data import Split
from .proxy import ProxyTask


@dataclass(frozen=True)
class TrainSpec:
    """What trains: an optimizer at a base learning rate, optionally a loss and a schedule candidate."""

    optimizer: Candidate
    lr: float
    loss: Candidate | None = None  # None: cross-entropy (classification, language) or MSE
    schedule: Candidate | None = None  # None: constant learning rate


@dataclass
class TrainResult:
    checkpoints: list[dict[str, torch.Tensor]]  # per checkpoint step: name -> [S, ...] weights
    train_loss: torch.Tensor  # [steps_run, S] training loss per step and seed
    diverged_at: int | None  # first step whose training loss was not finite


def train(
    task: ProxyTask, split: Split, spec: TrainSpec, seeds: list[int], batched: bool
) -> TrainResult:
    """Train `task` for every seed; batched as stacked weights, or one seed at a time."""
    if batched:
        return _train_stacked(task, split, spec, seeds)
    parts = [_train_stacked(task, split, spec, [seed]) for seed in seeds]
    return _concat(parts)


def init_weights(
    task: ProxyTask, seeds: list[int]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Stacked initial parameters and buffers, seed s initialised by torch.manual_seed(s)."""
    models = []
    for seed in seeds:
        torch.manual_seed(_mix(task.name, seed))
        models.append(task.make_model())
    return stack_module_state(models)


def batched_forward(task: ProxyTask, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
    """Outputs of every seed's model on its own inputs: x is [S, B, ...]."""
    base = _skeleton(task)

    def one(p: dict, b: dict, xi: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (xi,))

    return vmap(one)(params, buffers, x)


def per_seed_loss(
    task: ProxyTask, out: torch.Tensor, y: torch.Tensor, loss: Candidate | None
) -> torch.Tensor:
    """[S] training losses. A loss candidate is called once per seed, never under vmap."""
    if task.objective == "regression":
        return ((out.squeeze(-1) - y) ** 2).mean(-1)
    logits = out.reshape(out.shape[0], -1, out.shape[-1])
    targets = y.reshape(y.shape[0], -1)
    if loss is None:
        flat = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
        return flat.view(targets.shape).mean(-1)
    fn = loss.fn("loss")
    return torch.stack(
        [torch.as_tensor(fn(lg, t)).reshape(()) for lg, t in zip(logits, targets, strict=True)]
    )


def batch_indices(task: ProxyTask, split: Split, seeds: list[int]) -> torch.Tensor:
    """[steps, S, B] row (or window start) indices of every minibatch, drawn per seed up front so
    that seed s sees the same batches whichever other seeds train beside it."""
    high = len(split.x) - task.context - 1 if task.objective == "language" else len(split.x)
    per_seed = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(_mix(task.name, seed) * 7919 + 1)
        per_seed.append(torch.randint(0, high, (task.steps, task.batch_size), generator=gen))
    return torch.stack(per_seed, dim=1)


def gather_batch(task: ProxyTask, split: Split, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets [S, B, ...] for one step's [S, B] indices."""
    if task.objective == "language":
        tokens = split.x[indices[..., None] + torch.arange(task.context + 1)]
        return tokens[..., :-1], tokens[..., 1:]
    return split.x[indices], split.y[indices]


def _train_stacked(task: ProxyTask, split: Split, spec: TrainSpec, seeds: list[int]) -> TrainResult:
    params, buffers = init_weights(task, seeds)
    opt = CandidateOptimizer(list(params.values()), spec.optimizer, lr=spec.lr)
    sched = candidate_scheduler(opt, spec.schedule, task.steps) if spec.schedule else None
    save_at = set(task.checkpoint_steps())
    checkpoints = [_snapshot(params)]
    losses = []
    indices = batch_indices(task, split, seeds)
    for step in range(task.steps):
        x, y = gather_batch(task, split, indices[step])
        loss = per_seed_loss(task, batched_forward(task, params, buffers, x), y, spec.loss)
        losses.append(loss.detach())
        if not torch.isfinite(loss).all():
            return TrainResult(checkpoints, torch.stack(losses), diverged_at=step)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        if sched is not None:
            sched.step()
        if step + 1 in save_at:
            checkpoints.append(_snapshot(params))
    return TrainResult(checkpoints, torch.stack(losses), diverged_at=None)


def _snapshot(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in params.items()}


def _concat(parts: list[TrainResult]) -> TrainResult:
    diverged = [p.diverged_at for p in parts if p.diverged_at is not None]
    n_ckpt = min(len(p.checkpoints) for p in parts)
    n_steps = min(len(p.train_loss) for p in parts)
    checkpoints = [
        {
            name: torch.cat([p.checkpoints[i][name] for p in parts])
            for name in parts[0].checkpoints[0]
        }
        for i in range(n_ckpt)
    ]
    train_loss = torch.cat([p.train_loss[:n_steps] for p in parts], dim=1)
    return TrainResult(checkpoints, train_loss, min(diverged) if diverged else None)


_SKELETONS: dict[str, torch.nn.Module] = {}


def _skeleton(task: ProxyTask) -> torch.nn.Module:
    """A module instance used only for its structure; its own weights are never read."""
    if task.name not in _SKELETONS:
        _SKELETONS[task.name] = task.make_model().to("meta")
    return _SKELETONS[task.name]


def _mix(name: str, seed: int) -> int:
    """A stable 31-bit seed from a task name and a seed index (Python's hash() is salted per process)."""
    h = 2166136261
    for byte in f"{name}/{seed}".encode():
        h = ((h ^ byte) * 16777619) % 2**32
    return h % 2**31
