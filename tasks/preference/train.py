"""The sandbox side of the preference task: align a policy (a copy of the reference) with a
candidate preference loss at one beta, and return its weights. The host computes every number that
counts from them (frontier.py); nothing a candidate reports is used.

The recipe is the spec's (../shared/specs/preference_loss_task.md), measured there: Adam (0.9, 0.999)
at lr 1e-4, constant, no weight decay (AdamW's decay moves even a zero-gradient loss away from the
reference), gradient norm clipped at 1, 32 pairs per step, 300 steps. The batch order depends only on
the seed, so every candidate and every beta sees the same batches (paired comparisons).
"""

from __future__ import annotations

import copy
import math
import pathlib
from dataclasses import dataclass

import torch
from safetensors.torch import load_file

from ..adapters import CandidatePreferenceLoss
from ..contracts import Candidate
from .gpt import CharGPT, GPTConfig, continuation_logps
from .prepare import PAIRS_FILE, REFERENCE_FILE


@dataclass(frozen=True)
class TrainRecipe:
    steps: int = 300
    batch_pairs: int = 32
    lr: float = 1e-4
    clip: float = 1.0


@dataclass(frozen=True)
class TrainData:
    """What a worker loads once from the exported directory: the reference and the training pairs."""

    reference: CharGPT
    pairs: dict[str, torch.Tensor]


_DATA: dict[str, TrainData] = {}


def load_exported(directory: pathlib.Path, gpt: GPTConfig) -> TrainData:
    reference = CharGPT(gpt)
    reference.load_state_dict(load_file(directory / REFERENCE_FILE))
    pairs = {k: (v.long() if v.dtype == torch.uint8 else v) for k, v in load_file(directory / PAIRS_FILE).items()}
    data = TrainData(reference.eval(), pairs)
    _DATA["default"] = data
    return data


def loaded() -> TrainData:
    if "default" not in _DATA:
        raise RuntimeError("the preference data was not loaded: run `optforge prepare preference_loss` first")
    return _DATA["default"]


@dataclass(frozen=True)
class PolicyRun:
    weights: dict[str, torch.Tensor]
    stopped_at: int | None  # the step whose loss or gradient norm was not finite; None: ran to the end


def batch_order(n_pairs: int, recipe: TrainRecipe, seed: int) -> torch.Tensor:
    """[steps, batch] pair indices: epochs of seeded permutations, the same for every candidate."""
    gen = torch.Generator().manual_seed(10_007 * (seed + 1))
    needed = recipe.steps * recipe.batch_pairs
    order = torch.cat([torch.randperm(n_pairs, generator=gen) for _ in range(math.ceil(needed / n_pairs))])
    return order[:needed].view(recipe.steps, recipe.batch_pairs)


def align(candidate: Candidate, data: TrainData, beta: float, seed: int, recipe: TrainRecipe = TrainRecipe()) -> PolicyRun:
    """Train a copy of the reference with the candidate loss at `beta`; stop at a non-finite loss or
    gradient norm (the weights before that step are returned)."""
    loss_fn = CandidatePreferenceLoss(candidate)
    policy = copy.deepcopy(data.reference).train()
    opt = torch.optim.Adam(policy.parameters(), lr=recipe.lr, betas=(0.9, 0.999), weight_decay=0.0)
    pairs = data.pairs
    for step, idx in enumerate(batch_order(len(pairs["prompts"]), recipe, seed)):
        prompts = pairs["prompts"][idx]
        both = continuation_logps(policy, prompts.repeat(2, 1), torch.cat([pairs["chosen"][idx], pairs["rejected"][idx]]))
        chosen, rejected = both.chunk(2)
        losses = loss_fn(chosen, rejected, pairs["reference_chosen_logps"][idx],
                         pairs["reference_rejected_logps"][idx], beta)
        loss = losses.mean()
        if not torch.isfinite(loss):
            return PolicyRun(model_weights(policy), step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), recipe.clip)
        if not torch.isfinite(norm):
            return PolicyRun(model_weights(policy), step)
        opt.step()
    return PolicyRun(model_weights(policy), None)


def model_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A job's reply: the model's state as contiguous tensors detached from it."""
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
