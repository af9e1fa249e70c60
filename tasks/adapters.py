"""Adapters that turn loaded candidates into ordinary PyTorch objects.

    CandidateOptimizer(params, candidate, **hparams)  -> a torch.optim.Optimizer
    CandidateLoss(candidate)                          -> an nn.Module computing a scalar loss
    CandidatePreferenceLoss(candidate)                -> an nn.Module computing per-pair losses [B]
    candidate_scheduler(optimizer, candidate, total)  -> a torch.optim.lr_scheduler.LambdaLR
    CandidateScalingRule(candidate)                   -> scale(width, base_width, group, base), guarded
    scaled_param_groups(model, rule, width, base_width, base) -> torch.optim.AdamW param groups

The proxy tasks and the exported files use these same adapters, so what was scored is what users
get (DESIGN.md, "Candidate contracts"). A candidate that breaks its contract at run time (raises,
returns the wrong type or shape) surfaces as CandidateRuntimeError with a one-line message: that is
the candidate's failure, reported as a status and fed back to the proposer, not a bug of ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.optimizer import ParamsT

from .contracts import Candidate


class CandidateRuntimeError(RuntimeError):
    """A candidate raised or returned something outside its contract while running."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _require_kind(candidate: Candidate, kind: str) -> None:
    if candidate.kind != kind:
        raise ValueError(
            f"candidate {candidate.name!r} is a {candidate.kind} candidate, expected {kind}"
        )


class CandidateOptimizer(torch.optim.Optimizer):
    """A torch.optim.Optimizer that applies an optimizer candidate's per-tensor update rule.

    Defaults are the candidate's HPARAMS updated by `hparams`; param groups may override any of
    them. Every step reads each hyperparameter from the param group afresh, so any
    torch.optim.lr_scheduler (which writes group["lr"]) drives what the candidate sees as hp["lr"].

    State per parameter: {"step": int (updates applied so far), "candidate": the candidate's state
    dict}. The candidate's `step` argument counts from 1. Parameters whose .grad is None are skipped
    and their step count does not advance (as in torch.optim).
    """

    def __init__(self, params: ParamsT, candidate: Candidate, **hparams: Any) -> None:
        _require_kind(candidate, "optimizer")
        defaults: dict[str, Any] = candidate.hparams
        unknown = sorted(set(hparams) - set(defaults))
        if unknown:
            raise ValueError(
                f"unknown hyperparameter(s) {', '.join(unknown)} for candidate {candidate.name!r}; "
                f"its hyperparameters are: {', '.join(defaults)}"
            )
        defaults.update(hparams)
        self.candidate = candidate
        self._hparam_keys = tuple(defaults)
        self._init: Callable[[Tensor], Any] = candidate.fn("init")
        self._update: Callable[..., Any] = candidate.fn("update")
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Apply one update to every parameter that has a gradient; return closure's loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                grad = param.grad
                if grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["candidate"] = self._initial_state(param)
                step = state["step"] + 1
                delta, new_state = self._apply(grad, param, state["candidate"], step, self._hparams(group))
                param.add_(delta)
                state["step"] = step
                state["candidate"] = new_state
        return loss

    def _hparams(self, group: dict[str, Any]) -> dict[str, Any]:
        # A fresh hp per call: a candidate that writes into hp cannot leak into other tensors.
        return {key: group[key] for key in self._hparam_keys}

    def _apply(
        self, grad: Tensor, param: Tensor, state: dict[str, Any], step: int, hp: dict[str, Any]
    ) -> tuple[Tensor, dict[str, Any]]:
        """The candidate's update of one tensor, checked against its contract."""
        try:
            result = self._update(grad, param, state, step, hp)
        except Exception as exc:
            raise self._error(f"update raised {first_line(exc)}") from exc
        return self._check_update(result, param)

    def _initial_state(self, param: Tensor) -> dict[str, Any]:
        try:
            state = self._init(param)
        except Exception as exc:
            raise self._error(f"init raised {first_line(exc)}") from exc
        if not isinstance(state, dict):
            raise self._error(f"init must return a dict of tensors, got {type(state).__name__}")
        return state

    def _check_update(self, result: Any, param: Tensor) -> tuple[Tensor, dict[str, Any]]:
        if not isinstance(result, tuple) or len(result) != 2:
            got = (
                f"a tuple of length {len(result)}"
                if isinstance(result, tuple)
                else type(result).__name__
            )
            raise self._error(f"update must return a tuple (delta, new_state), got {got}")
        delta, new_state = result
        if not isinstance(delta, Tensor):
            raise self._error(f"update's delta must be a tensor, got {type(delta).__name__}")
        if delta.shape != param.shape:
            raise self._error(
                f"update's delta has shape {tuple(delta.shape)}, the parameter has shape {tuple(param.shape)}"
            )
        if not isinstance(new_state, dict):
            raise self._error(f"update's new_state must be a dict, got {type(new_state).__name__}")
        return delta, new_state

    def _error(self, message: str) -> CandidateRuntimeError:
        return CandidateRuntimeError(f"optimizer candidate {self.candidate.name!r}: {message}")


class CandidateLoss(nn.Module):
    """An nn.Module computing a loss candidate: forward(logits [B, C], targets [B]) -> scalar."""

    def __init__(self, candidate: Candidate) -> None:
        _require_kind(candidate, "loss")
        super().__init__()
        self.candidate = candidate
        self._loss: Callable[[Tensor, Tensor], Any] = candidate.fn("loss")

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        try:
            value = self._loss(logits, targets)
        except Exception as exc:
            raise self._error(f"loss raised {first_line(exc)}") from exc
        if not isinstance(value, Tensor):
            raise self._error(f"loss must return a scalar tensor, got {type(value).__name__}")
        if value.dim() != 0:
            raise self._error(
                f"loss must return a scalar (mean over the batch), got shape {tuple(value.shape)}"
            )
        return value

    def _error(self, message: str) -> CandidateRuntimeError:
        return CandidateRuntimeError(f"loss candidate {self.candidate.name!r}: {message}")


class CandidatePreferenceLoss(nn.Module):
    """A preference-loss candidate as an nn.Module (DiscoPOP's signature):

        forward(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                reference_rejected_logps, beta) -> per-pair losses [B]

    Each log-prob is a [B] tensor, summed over a continuation's tokens; a DPO step minimises the
    mean of the result. `beta` is a float (the candidate may ignore it)."""

    def __init__(self, candidate: Candidate) -> None:
        _require_kind(candidate, "preference_loss")
        super().__init__()
        self.candidate = candidate
        self._loss: Callable[..., Any] = candidate.fn("loss")

    def forward(
        self, policy_chosen_logps: Tensor, policy_rejected_logps: Tensor,
        reference_chosen_logps: Tensor, reference_rejected_logps: Tensor, beta: float,
    ) -> Tensor:
        try:
            value = self._loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                               reference_rejected_logps, beta)
        except Exception as exc:
            raise self._error(f"loss raised {first_line(exc)}") from exc
        if not isinstance(value, Tensor):
            raise self._error(f"loss must return a tensor of per-pair losses, got {type(value).__name__}")
        expected = tuple(policy_chosen_logps.shape)
        if tuple(value.shape) != expected:
            raise self._error(
                f"loss must return one loss per pair, shape {expected}, got {tuple(value.shape)} "
                "(return the per-pair losses; the trainer takes their mean)"
            )
        return value

    def _error(self, message: str) -> CandidateRuntimeError:
        return CandidateRuntimeError(f"preference loss candidate {self.candidate.name!r}: {message}")


def candidate_scheduler(
    optimizer: torch.optim.Optimizer, candidate: Candidate, total_steps: int
) -> LambdaLR:
    """A LambdaLR whose multiplier is the schedule candidate's schedule(step, total_steps).

    Call scheduler.step() once after each optimizer.step(): the update number i (counting from 0)
    then uses schedule(i, total_steps), i = 0 .. total_steps - 1. LambdaLR evaluates step 0 when it
    is built and, after the last update, step == total_steps; that last value is never used.
    """
    _require_kind(candidate, "schedule")
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}")
    schedule: Callable[[int, int], Any] = candidate.fn("schedule")

    def _error(message: str) -> CandidateRuntimeError:
        return CandidateRuntimeError(f"schedule candidate {candidate.name!r}: {message}")

    def multiplier(step: int) -> float:
        call = f"schedule({step}, {total_steps})"
        try:
            value = schedule(step, total_steps)
            if isinstance(value, Tensor) and value.numel() == 1:
                value = value.item()
        except Exception as exc:
            raise _error(f"{call} raised {first_line(exc)}") from exc
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _error(
                f"schedule must return a number, got {type(value).__name__} at step {step}"
            )
        if not (math.isfinite(value) and value >= 0):
            raise _error(f"{call} returned {value!r}; it must be finite and >= 0")
        return float(value)

    return LambdaLR(optimizer, multiplier)


# The parameter groups a scaling rule sets hyperparameters for, in the order they are reported.
SCALING_GROUPS = ("embedding", "hidden", "output", "vector")
# PyTorch's AdamW multiplies every weight by (1 - lr * weight_decay) each step: past a few percent
# that product alone erases a layer in tens of steps, whatever the gradients say.
MAX_LR_TIMES_WD = 0.05


class CandidateScalingRule:
    """A scaling-rule candidate as a guarded function: rule(width, base_width, group, base) ->
    {"lr": float, "weight_decay": float}, with `base` that group's {"lr", "weight_decay"} tuned at
    base_width. Raises CandidateRuntimeError (one line) when the rule raises or returns values
    AdamW cannot use: not finite, lr outside (0, 1], weight decay < 0, lr x weight decay > 0.05."""

    def __init__(self, candidate: Candidate) -> None:
        _require_kind(candidate, "scaling_rule")
        self.candidate = candidate
        self._scale: Callable[..., Any] = candidate.fn("scale")

    def __call__(self, width: int, base_width: int, group: str, base: dict[str, float]) -> dict[str, float]:
        if group not in SCALING_GROUPS:
            raise ValueError(f"unknown parameter group {group!r}: use one of {', '.join(SCALING_GROUPS)}")
        call = f"scale({width}, {base_width}, {group!r}, ...)"
        try:  # a copy, so that a rule cannot change the base values the next call sees
            value = self._scale(int(width), int(base_width), group, {k: float(v) for k, v in base.items()})
        except Exception as exc:
            raise self._error(f"{call} raised {first_line(exc)}") from exc
        if not isinstance(value, dict) or set(value) != {"lr", "weight_decay"}:
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise self._error(f'{call} must return {{"lr": ..., "weight_decay": ...}}, got {got}')
        lr, wd = (_number(value[k]) for k in ("lr", "weight_decay"))
        if lr is None or wd is None or not (math.isfinite(lr) and math.isfinite(wd)):
            raise self._error(f"{call} returned lr={value['lr']!r}, weight_decay={value['weight_decay']!r}: both must be finite numbers")
        if not 0 < lr <= 1:
            raise self._error(f"{call} returned lr={lr:.3g}: it must be in (0, 1]")
        if wd < 0:
            raise self._error(f"{call} returned weight_decay={wd:.3g}: it must be >= 0")
        if lr * wd > MAX_LR_TIMES_WD:
            raise self._error(f"{call} returned lr x weight_decay = {lr * wd!r}: keep it <= {MAX_LR_TIMES_WD} "
                              "(AdamW shrinks every weight by that factor each step)")
        return {"lr": lr, "weight_decay": wd}

    def _error(self, message: str) -> CandidateRuntimeError:
        return CandidateRuntimeError(f"scaling rule candidate {self.candidate.name!r}: {message}")


def _number(value: Any) -> float | None:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def default_parameter_group(name: str, param: Tensor) -> str:
    """Which SCALING_GROUPS entry a parameter of a user's model belongs to, from its name and shape:
    vectors (LayerNorm gains, biases) first, then embeddings ("embed" or "wte"/"wpe" in the name),
    the readout ("lm_head", "head", "readout", "output", "unembed"), and every other matrix is hidden.
    Pass your own function to scaled_param_groups when your names differ."""
    lowered = name.lower()
    if param.ndim < 2:
        return "vector"
    if "embed" in lowered.replace("unembed", "") or any(part in lowered.split(".") for part in ("wte", "wpe")):
        return "embedding"
    if any(part in lowered.split(".") for part in ("lm_head", "head", "readout", "output", "unembed")):
        return "output"
    return "hidden"


def scaled_param_groups(
    model: nn.Module, rule: Candidate | CandidateScalingRule, width: int, base_width: int,
    base: dict[str, dict[str, float]], group_of: Callable[[str, Tensor], str] = default_parameter_group,
) -> list[dict[str, Any]]:
    """Param groups for torch.optim.AdamW(...) on `model` at `width`: each of SCALING_GROUPS that has
    parameters gets the rule's {"lr", "weight_decay"} from `base[group]`, the values tuned at
    `base_width` (every group present in the model needs one). Parameters that do not require
    gradients are left out."""
    scale = rule if isinstance(rule, CandidateScalingRule) else CandidateScalingRule(rule)
    members: dict[str, list[Tensor]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            group = group_of(name, param)
            if group not in SCALING_GROUPS:
                raise ValueError(f"group_of({name!r}) returned {group!r}: use one of {', '.join(SCALING_GROUPS)}")
            members.setdefault(group, []).append(param)
    missing = sorted(set(members) - set(base))
    if missing:
        raise ValueError(f"no base values for group(s) {', '.join(missing)}: pass base[group] = "
                         '{"lr": ..., "weight_decay": ...} tuned at base_width')
    return [{"params": members[g], "group": g, **scale(width, base_width, g, base[g])}
            for g in SCALING_GROUPS if g in members]


__all__ = ["MAX_LR_TIMES_WD", "SCALING_GROUPS", "CandidateLoss", "CandidateOptimizer", "CandidateRuntimeError",
           "CandidateScalingRule", "candidate_scheduler", "default_parameter_group", "first_line",
           "scaled_param_groups"]
