"""Training on a proxy task, many members at once.

A member is one seed at one learning rate. Members train batched as stacked weights: every parameter
gets a leading member dimension (torch.func.stack_module_state), the model runs under
torch.func.vmap, and so does the candidate's code (vectorized.py), so every call sees one member's
tensors with their true shapes. Members are ordered learning-rate-major: member l * S + s is seed s
at learning rate l. How much is batched (every learning rate at once, one rate at a time, or one
member at a time) is the batching mode.

Seed s of a task always means the same initial weights and the same minibatch order, whatever the
candidate and the learning rate: comparisons between candidates and between rates are paired by seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from .adapters import CandidateLoss, candidate_scheduler
from .contracts import Candidate
from .data import Split
from .proxy import ProxyTask
from .vectorized import BATCHINGS, MemberOptimizer, member_losses, member_rates


@dataclass(frozen=True)
class TrainSpec:
    """What trains: an optimizer at one or more base learning rates, optionally a loss and a
    schedule candidate."""

    optimizer: Candidate
    lrs: tuple[float, ...]
    loss: Candidate | None = None  # None: cross-entropy (classification, language) or MSE
    schedule: Candidate | None = None  # None: constant learning rate


@dataclass
class TrainResult:
    checkpoints: list[dict[str, torch.Tensor]]  # per checkpoint step: name -> [L*S, ...] weights
    train_loss: torch.Tensor  # [steps_run, L*S] training loss per step and member
    diverged_at: list[int | None]  # per learning rate: first step a seed's training loss was not finite


def train(
    task: ProxyTask, split: Split, spec: TrainSpec, seeds: list[int], batching: str = "vmap_lr",
    dtype: torch.dtype = torch.float32, device: str = "cpu",
) -> TrainResult:
    """Train `task` for every seed at every learning rate of `spec`, batched as `batching` says
    (vectorized.py), on `device` ("cpu" or "cuda"). Training stops early once every learning rate
    has diverged. Initial weights and minibatch order are drawn on the CPU whatever the device, so
    seed s means the same start and the same batches on either; the result is always on the CPU.

    A mode that vmap cannot run raises (the caller falls back to a less batched mode: tier 0
    decides the mode, the evaluation retries a job that fails in it)."""
    if batching not in BATCHINGS:
        raise ValueError(f"unknown batching {batching!r}: use one of {', '.join(BATCHINGS)}")
    where = torch.device(device)
    if where.type != "cpu":
        split = Split(split.x.to(where), split.y.to(where))  # once per job, not per step
    if batching == "vmap_lr":
        return _train_members(task, split, spec, seeds, spec.lrs, True, dtype, where)
    parts: list[TrainResult | None] = []
    if batching == "vmap":
        parts += [_train_members(task, split, spec, seeds, (lr,), True, dtype, where) for lr in spec.lrs]
        return _join(task, parts, 1)
    for lr in spec.lrs:
        for seed in seeds:
            if parts and _group_diverged(parts, len(seeds)):
                # This rate has diverged already: its other seeds cannot change that, skip them.
                parts.append(None)
                continue
            parts.append(_train_members(task, split, spec, [seed], (lr,), False, dtype, where))
    return _join(task, parts, len(seeds))


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


def member_loss(
    task: ProxyTask, out: torch.Tensor, y: torch.Tensor, loss: CandidateLoss | None, vectorized: bool
) -> torch.Tensor:
    """[M] training losses, one per member; a loss candidate runs under vmap (or on the one member)."""
    if task.objective == "regression":
        return ((out.squeeze(-1) - y) ** 2).mean(-1)
    logits = out.reshape(out.shape[0], -1, out.shape[-1])
    targets = y.reshape(y.shape[0], -1)
    if loss is None:
        flat = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
        return flat.view(targets.shape).mean(-1)
    return member_losses(loss, logits, targets, vectorized)


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
        tokens = split.x[indices[..., None] + torch.arange(task.context + 1, device=indices.device)]
        return tokens[..., :-1], tokens[..., 1:]
    return split.x[indices], split.y[indices]


def _train_members(
    task: ProxyTask, split: Split, spec: TrainSpec, seeds: list[int], lrs: tuple[float, ...],
    vectorized: bool, dtype: torch.dtype, device: torch.device,
) -> TrainResult:
    n_seeds = len(seeds)
    params, buffers = init_weights(task, seeds)
    params = {n: _tile(p, len(lrs)).to(device, dtype).requires_grad_(True) for n, p in params.items()}
    buffers = {n: _tile(b, len(lrs)).to(device) for n, b in buffers.items()}
    rates = member_rates(lrs, n_seeds, device)
    opt = MemberOptimizer(list(params.values()), spec.optimizer, rates, vectorized)
    sched = candidate_scheduler(opt, spec.schedule, task.steps) if spec.schedule else None
    loss_fn = CandidateLoss(spec.loss) if spec.loss else None
    save_at = set(task.checkpoint_steps())
    checkpoints = [_snapshot(params)]
    losses = []
    diverged: list[int | None] = [None] * len(lrs)
    indices = _tile(batch_indices(task, split, seeds).transpose(0, 1), len(lrs)).transpose(0, 1)
    indices = indices.to(device)
    for step in range(task.steps):
        x, y = gather_batch(task, split, indices[step])
        x, y = (t.to(dtype) if t.is_floating_point() else t for t in (x, y))
        out = batched_forward(task, params, buffers, x)
        loss = member_loss(task, out, y, loss_fn, vectorized)
        losses.append(loss.detach())
        finite = torch.isfinite(loss.detach()).view(len(lrs), n_seeds).all(dim=1).tolist()
        diverged = [d if d is not None or ok else step for d, ok in zip(diverged, finite, strict=True)]
        if all(d is not None for d in diverged):
            break
        opt.zero_grad(set_to_none=True)
        # Members are independent: the gradient of the sum is each member's own, and a diverged
        # member's non-finite values stay in its own slice.
        loss.sum().backward()
        opt.step()
        if sched is not None:
            sched.step()
        if step + 1 in save_at:
            checkpoints.append(_snapshot(params))
    return TrainResult(checkpoints, torch.stack(losses).cpu(), diverged)


def _tile(t: torch.Tensor, times: int) -> torch.Tensor:
    """[S, ...] -> [times * S, ...]: the block of seeds once per learning rate."""
    return t.detach().repeat(times, *([1] * (t.dim() - 1)))


def _snapshot(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights now, on the CPU (a job returns them through the CPU whatever it trained on)."""
    return {name: p.detach().to("cpu", copy=True) for name, p in params.items()}


def _group_diverged(parts: list[TrainResult | None], n_seeds: int) -> bool:
    """Whether any seed run so far at the learning rate of the next part has diverged."""
    start = (len(parts) // n_seeds) * n_seeds
    group = parts[start:]
    return any(p is None or p.diverged_at[0] is not None for p in group)


def _join(task: ProxyTask, parts: list[TrainResult | None], per_lr: int) -> TrainResult:
    """One result from runs of consecutive members, `per_lr` runs per learning rate (None: a run
    skipped because its rate had diverged; the loop runs one member each). It holds what one
    batched run of all the members would: checkpoints and losses up to the step where the last
    rate diverged (all of them if one never did), NaN where a run had stopped or was skipped."""
    groups = [parts[i : i + per_lr] for i in range(0, len(parts), per_lr)]
    diverged = [_first_divergence(group) for group in groups]
    last = None if None in diverged else max(d for d in diverged if d is not None)
    n_ckpt = task.checkpoints_until(last)
    n_steps = task.steps if last is None else last + 1
    template = next(p for p in parts if p is not None)
    names = list(template.checkpoints[0])
    checkpoints = [
        {name: torch.cat([_checkpoint(p, i, name, template) for p in parts]) for name in names}
        for i in range(n_ckpt)
    ]
    train_loss = torch.cat([_loss_columns(p, n_steps) for p in parts], dim=1)
    return TrainResult(checkpoints, train_loss, diverged)


def _first_divergence(group: list[TrainResult | None]) -> int | None:
    steps = [d for p in group if p is not None for d in p.diverged_at if d is not None]
    return min(steps) if steps else None


def _checkpoint(part: TrainResult | None, i: int, name: str, template: TrainResult) -> torch.Tensor:
    if part is not None and i < len(part.checkpoints):
        return part.checkpoints[i][name]
    like = template.checkpoints[0][name]
    members = 1 if part is None else like.shape[0]
    return torch.full((members, *like.shape[1:]), float("nan"), dtype=like.dtype)


def _loss_columns(part: TrainResult | None, n_steps: int) -> torch.Tensor:
    members = 1 if part is None else part.train_loss.shape[1]
    out = torch.full((n_steps, members), float("nan"))
    if part is not None:
        steps = min(n_steps, len(part.train_loss))
        out[:steps] = part.train_loss[:steps]
    return out


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
