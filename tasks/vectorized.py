"""Candidate code over stacked members, with the semantics of one member at a time.

Training stacks many *members* (one seed at one learning rate each) into every parameter's leading
dimension. Candidate code is written for one parameter, and anything that reduces over a tensor
(`grad.mean()`, a norm, an RMS clip) or reads its shape (`param.ndim`, Muon's matrix check) would mix
members or see the wrong shape if it were handed the stack. So candidate calls run under
`torch.func.vmap` over the member dimension: each call sees one member's tensors with their true
shapes, whatever the candidate reduces over.

Batching modes, most batched first (tier 0 picks one per candidate; training falls back along this
order when a mode raises, and records why):
    "vmap_lr"  every seed and every learning rate of a sweep in one run; hp["lr"] is a per-member
               0-d tensor under vmap (the candidate must not turn it into a Python number)
    "vmap"     every seed in one run per learning rate; hp["lr"] is a Python float
    "loop"     one member at a time, no vmap: for candidates that vmap cannot run (`.item()`,
               Python control flow on tensor values, unsupported in-place ops)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.func import vmap
from torch.optim.optimizer import ParamsT
from torch.utils._pytree import tree_leaves

from .adapters import CandidateLoss, CandidateOptimizer, CandidateRuntimeError, first_line
from .contracts import Candidate

BATCHINGS: tuple[str, ...] = ("vmap_lr", "vmap", "loop")


def less_batched(a: str, b: str) -> str:
    """The less batched of two modes (the one later in BATCHINGS)."""
    return max(a, b, key=BATCHINGS.index)


def fallback_note(mode: str, exc: BaseException) -> str:
    """One line saying why `mode` could not be used: the candidate's own error where it raised one
    (the adapter's message already names the call), else the exception's first line."""
    text = str(exc).strip().splitlines()[0] if isinstance(exc, CandidateRuntimeError) else first_line(exc)
    return f"{mode}: {text}"


def member_rates(
    lrs: tuple[float, ...], n_seeds: int, device: torch.device | str = "cpu"
) -> float | Tensor:
    """What MemberOptimizer takes for learning-rate-major members: the one rate as a float, or each
    member's rate as a float64 tensor on the members' device (every rate repeated for its block of
    seeds)."""
    if len(lrs) == 1:
        return lrs[0]
    return torch.tensor(lrs, dtype=torch.float64, device=device).repeat_interleave(n_seeds)


class MemberOptimizer(CandidateOptimizer):
    """An optimizer candidate over parameters stacked as [members, *shape].

    `lrs` is one learning rate for every member (a float), or a [members] float64 tensor of
    per-member learning rates. Then the group's "lr" starts at 1.0 and is the multiplier that an LR
    scheduler drives, and the candidate sees hp["lr"] = group["lr"] * its member's rate: the same
    product, in float64, that a single-model optimizer computes from a scheduled base rate.

    `vectorized=False` is the loop fallback: exactly one member, and the candidate is called on the
    [0] slices (true shapes, no vmap).
    """

    def __init__(
        self, params: ParamsT, candidate: Candidate, lrs: float | Tensor, vectorized: bool
    ) -> None:
        self._member_lrs = lrs if isinstance(lrs, Tensor) else None
        if self._member_lrs is not None and not vectorized:
            raise ValueError("per-member learning rates need vectorized=True")
        super().__init__(params, candidate, lr=1.0 if self._member_lrs is not None else float(lrs))
        self._vectorized = vectorized

    def _hparams(self, group: dict[str, Any]) -> dict[str, Any]:
        hp = super()._hparams(group)
        if self._member_lrs is not None:
            hp["lr"] = group["lr"] * self._member_lrs
        return hp

    def _initial_state(self, param: Tensor) -> dict[str, Any]:
        init_one = super()._initial_state
        if not self._vectorized:
            return init_one(_only_member(param))
        return _vmap_with_static_state(lambda p: ((), init_one(p)), (param,))[1]

    def _apply(
        self, grad: Tensor, param: Tensor, state: dict[str, Any], step: int, hp: dict[str, Any]
    ) -> tuple[Tensor, dict[str, Any]]:
        apply_one = super()._apply
        if not self._vectorized:
            delta, new_state = apply_one(_only_member(grad), _only_member(param), state, step, hp)
            return delta.unsqueeze(0), new_state
        tensors, static = split_state(state)
        lr = hp.pop("lr") if isinstance(hp["lr"], Tensor) else None

        def one(g: Tensor, p: Tensor, t: dict[str, Any], *member_lr: Tensor) -> tuple[Tensor, dict[str, Any]]:
            one_hp = dict(hp, lr=member_lr[0]) if member_lr else dict(hp)
            return apply_one(g, p, {**static, **t}, step, one_hp)

        inputs = (grad, param, tensors) if lr is None else (grad, param, tensors, lr)
        return _vmap_with_static_state(one, inputs)


def member_losses(loss: CandidateLoss, logits: Tensor, targets: Tensor, vectorized: bool) -> Tensor:
    """[members] losses of a loss candidate on [members, N, C] logits and [members, N] targets."""
    if vectorized:
        return vmap(loss)(logits, targets)
    return loss(_only_member(logits), _only_member(targets)).reshape(1)


def split_state(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(entries made only of tensors, everything else). vmap can carry only the first kind; the
    rest (a Python step counter, a flag) cannot depend on any member's values under vmap, so it is
    one value shared by all members."""
    tensors: dict[str, Any] = {}
    static: dict[str, Any] = {}
    for key, value in state.items():
        leaves = tree_leaves(value)
        target = tensors if leaves and all(isinstance(v, Tensor) for v in leaves) else static
        target[key] = value
    return tensors, static


def _vmap_with_static_state(
    fn: Callable[..., tuple[Any, dict[str, Any]]], inputs: tuple[Any, ...]
) -> tuple[Any, dict[str, Any]]:
    """vmap `fn`, which returns (tensor output, state dict), over dim 0 of every input; the state's
    non-tensor entries leave through a side channel, and the state keeps the candidate's key order."""
    side: dict[str, Any] = {}

    def tensors_only(*args: Any) -> tuple[Any, dict[str, Any]]:
        out, state = fn(*args)
        if not isinstance(state, dict):  # checked by the adapter already; kept for the type checker
            raise TypeError("state must be a dict")
        tensors, static = split_state(state)
        side.update(static=static, order=list(state))
        return out, tensors

    out, tensors = vmap(tensors_only)(*inputs)
    merged = {**tensors, **side["static"]}
    return out, {key: merged[key] for key in side["order"]}


def _only_member(t: Tensor) -> Tensor:
    if t.shape[0] != 1:
        raise ValueError(f"the loop fallback trains one member at a time, got {t.shape[0]}")
    return t[0]


__all__ = [
    "BATCHINGS", "MemberOptimizer", "fallback_note", "less_batched", "member_losses", "member_rates",
    "split_state",
]
