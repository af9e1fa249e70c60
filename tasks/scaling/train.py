"""One run of the scaling task: train the ResMLP at one width with given per-group AdamW
hyperparameters, and return its weights. Trusted code only: a candidate rule's hyperparameters are
computed in a job of their own (tasks/jobs.py, action "scale") and reach this one as numbers, so no
candidate code shares a process with the training loop; the host computes the held-out loss.

The recipe is the spec's (../shared/specs/scaling_rule_task.md), measured there: AdamW (0.9, 0.95),
eps 1e-8, batch 128, 2000 steps in a single pass over random windows, 100 warmup steps then linear
decay to 0. At the base optimum lr x wd x steps ~ 4.5, so weight decay matters (0.03-0.06 nats).
A seed fixes the initialisation and the windows, for every rule alike: comparisons are paired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..adapters import MAX_LR_TIMES_WD, SCALING_GROUPS
from ..preference.train import model_weights
from .model import CONTEXT, ResMLP

Hyperparameters = dict[str, tuple[float, float]]  # group -> (lr, weight decay)


@dataclass(frozen=True)
class Recipe:
    steps: int = 2000
    batch: int = 128
    warmup: int = 100
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8


@dataclass(frozen=True)
class Run:
    weights: dict[str, torch.Tensor]
    diverged_at: int | None  # the step whose training loss was not finite; None: ran to the end
    train_loss: float  # mean training loss over the last 100 steps (diagnostic only)


def checked_hyperparameters(hyperparameters: dict[str, object]) -> Hyperparameters:
    """The per-group (lr, weight decay), validated: every group, finite, 0 < lr <= 1, wd >= 0,
    lr x wd <= MAX_LR_TIMES_WD. ValueError (one line) otherwise."""
    if set(hyperparameters) != set(SCALING_GROUPS):
        raise ValueError(f"hyperparameters for groups {sorted(hyperparameters)}, expected {list(SCALING_GROUPS)}")
    checked = {}
    for group in SCALING_GROUPS:
        value = hyperparameters[group]
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise ValueError(f"{group}: expected (lr, weight_decay), got {value!r}")
        lr, wd = (float(v) for v in value)
        if not (math.isfinite(lr) and math.isfinite(wd) and 0 < lr <= 1 and wd >= 0 and lr * wd <= MAX_LR_TIMES_WD):
            raise ValueError(f"{group}: lr={lr!r}, weight_decay={wd!r} outside 0 < lr <= 1, wd >= 0, "
                             f"lr x wd <= {MAX_LR_TIMES_WD}")
        checked[group] = (lr, wd)
    return checked


def multiplier(step: int, recipe: Recipe) -> float:
    """The schedule at update `step` (0-based): linear warm-up to 1, then linear decay to 0."""
    if step < recipe.warmup:
        return (step + 1) / recipe.warmup
    return max(0.0, (recipe.steps - step) / (recipe.steps - recipe.warmup))


def windows(ids: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(contexts [N, 32], next characters [N]) of the windows that start at `starts`."""
    index = starts.unsqueeze(-1) + torch.arange(CONTEXT + 1)
    chunk = ids[index].long()
    return chunk[..., :CONTEXT], chunk[..., CONTEXT]


def window_starts(n_ids: int, recipe: Recipe, seed: int) -> torch.Tensor:
    """[steps, batch] window starts: the seed's own draw, the same for every rule and width."""
    generator = torch.Generator().manual_seed(7_919 * (seed + 1))
    return torch.randint(0, n_ids - CONTEXT, (recipe.steps, recipe.batch), generator=generator)


def init_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(104_729 * (seed + 1))


def train(width: int, hyperparameters: Hyperparameters, seed: int, ids: torch.Tensor, recipe: Recipe = Recipe()) -> Run:
    """Train a fresh ResMLP of `width` (initialised by `seed`) on `ids` with AdamW at the given
    per-group (lr, weight decay) under the recipe's schedule."""
    hyperparameters = checked_hyperparameters(dict(hyperparameters))
    model = ResMLP(width, init_generator(seed))
    groups = [{"params": params, "lr": hyperparameters[g][0], "weight_decay": hyperparameters[g][1], "base_lr": hyperparameters[g][0]}
              for g, params in model.groups().items()]
    optimizer = torch.optim.AdamW(groups, betas=(recipe.beta1, recipe.beta2), eps=recipe.eps)
    losses: list[float] = []
    for step, starts in enumerate(window_starts(len(ids), recipe, seed)):
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * multiplier(step, recipe)
        context, target = windows(ids, starts)
        loss = F.cross_entropy(model(context), target)
        if not torch.isfinite(loss):
            return Run(model_weights(model), step, math.inf)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return Run(model_weights(model), None, sum(losses[-100:]) / len(losses[-100:]))


@torch.no_grad()
def heldout_loss(model: ResMLP, contexts: torch.Tensor, targets: torch.Tensor, batch: int = 4096) -> float:
    """Mean cross-entropy (nats per character) over the evaluation windows."""
    model.eval()
    total = 0.0
    for i in range(0, len(targets), batch):
        logits = model(contexts[i:i + batch])
        total += float(F.cross_entropy(logits.double(), targets[i:i + batch], reduction="sum"))
    return total / len(targets)
