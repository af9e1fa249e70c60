"""The loss kind: a classification loss.

    def loss(logits, targets): ...     # logits [B, C] float, targets [B] long -> scalar

It trains the task's network with the reference optimizer (AdamW) at the reference's default window
of learning rates, only on tasks with class targets, and is judged by held-out classification error:
a loss must not be judged by its own value.
"""

from __future__ import annotations

import torch

from ..adapters import CandidateLoss, CandidateOptimizer
from ..baselines import load_baseline
from ..contracts import Candidate
from ..proxy import ProxyTask
from ..tier0 import SEED_STACK, Tier0Report, digest, fixed, record_batching, same
from ..training import TrainSpec
from ..vectorized import fallback_note, member_losses
from .spec import ExportSpec, KindSpec, SweepPlan


def train_spec(candidate: Candidate, lrs: tuple[float, ...]) -> TrainSpec:
    """AdamW trains the task's network through the candidate loss."""
    return TrainSpec(optimizer=load_baseline("optimizer", "adamw"), lrs=lrs, loss=candidate)


def runs_on(task: ProxyTask) -> bool:
    return task.objective in ("classification", "language")


def _loss_checks(candidate: Candidate, report: Tier0Report) -> None:
    fn = candidate.fn("loss")
    outputs = []
    for n_classes in (2, 5):
        logits = fixed((8, n_classes), n_classes).requires_grad_(True)
        targets = torch.arange(8) % n_classes
        value = fn(logits, targets)
        if not report.record(
            "scalar",
            isinstance(value, torch.Tensor) and value.dim() == 0,
            "loss must return a scalar tensor",
        ):
            return
        (grad,) = torch.autograd.grad(value, logits)
        ok = (
            bool(torch.isfinite(value))
            and bool(torch.isfinite(grad).all())
            and bool(grad.abs().sum() > 0)
        )
        if not report.record(
            "finite_gradient", ok, "loss or its gradient is not finite, or the gradient is zero"
        ):
            return
        outputs += [value.detach().reshape(1), grad]
    record_batching(report, *_loss_batching(candidate))
    report.fingerprint = digest(outputs)
    before, after = _train_linear_classifier(candidate)
    report.record(
        "improves_classifier",
        after < before,
        f"training error went from {before:.3f} to {after:.3f}",
    )


def _loss_batching(candidate: Candidate) -> tuple[str, str | None]:
    """Vmapped over stacked members, does the loss give each member's loss on its own?"""
    loss = CandidateLoss(candidate)
    logits = torch.stack([fixed((8, 5), 50 + s) for s in range(SEED_STACK)])
    targets = torch.stack([torch.randperm(8, generator=torch.Generator().manual_seed(s)) % 5
                           for s in range(SEED_STACK)])
    try:
        batched = member_losses(loss, logits, targets, vectorized=True)
    except Exception as exc:
        return "loop", fallback_note("vmap", exc)
    alone = [loss(lg, t) for lg, t in zip(logits, targets, strict=True)]
    if not same(list(batched), alone, tol=1e-5):
        return "loop", "vmap: vmapped losses differ from one member at a time"
    return "vmap_lr", None


def _train_linear_classifier(candidate: Candidate) -> tuple[float, float]:
    """Error of a linear classifier on a fixed 3-class problem before and after 60 AdamW steps."""
    gen = torch.Generator().manual_seed(7)
    centers = torch.randn(3, 5, generator=gen) * 2
    y = torch.arange(120) % 3
    x = centers[y] + torch.randn(120, 5, generator=gen)
    w = torch.zeros(5, 3, requires_grad=True)
    opt = CandidateOptimizer([w], load_baseline("optimizer", "adamw"), lr=0.05)
    before = float(((x @ w.detach()).argmax(1) != y).float().mean())
    for _ in range(60):
        opt.zero_grad()
        candidate.fn("loss")(x @ w, y).backward()
        opt.step()
    return before, float(((x @ w.detach()).argmax(1) != y).float().mean())


PUBLIC_CODE = '''class DiscoveredLoss(CandidateLoss):
    """The candidate as an nn.Module: forward(logits [B, C], targets [B]) -> scalar loss."""

    def __init__(self) -> None:
        super().__init__(CANDIDATE)


discovered_loss = DiscoveredLoss()  # the same, used as a function: discovered_loss(logits, targets)

__all__ = ["CANDIDATE", "PROVENANCE", "DiscoveredLoss", "discovered_loss"]'''

SPEC = KindSpec(
    name="loss",
    summary="a classification loss: loss(logits, targets) -> scalar",
    main_function="loss",
    baselines="losses",
    tier0=_loss_checks,
    train_spec=train_spec,
    runs_on=runs_on,
    metric=lambda task: "error",
    reference=("optimizer", "adamw"),
    sweep=SweepPlan(centre="reference"),
    export=ExportSpec(
        public_name="DiscoveredLoss",
        roots=("load_candidate", "CandidateLoss"),
        public_code=PUBLIC_CODE,
        usage=(
            "from {module} import DiscoveredLoss",
            "loss = DiscoveredLoss()(logits, targets)  # logits [B, C], targets [B] -> scalar",
            '# or: optforge.load_loss("{file}")',
        ),
        api_loader="load_loss",
    ),
)
