"""The trusted side's measurement: held-out loss of returned weights on fixed evaluation windows.

16,384 windows drawn once (a fixed seed) from the held-out files; the same for every rule, width
and seed, so differences between rules are paired down to the windows.
"""

from __future__ import annotations

import functools

import torch

from . import corpus
from .model import CONTEXT, ResMLP
from .train import heldout_loss, windows

EVALUATION_WINDOWS = 16_384
EVALUATION_SEED = 2_024


@functools.cache
def evaluation_windows() -> tuple[torch.Tensor, torch.Tensor]:
    ids = corpus.heldout_ids()
    generator = torch.Generator().manual_seed(EVALUATION_SEED)
    starts = torch.randint(0, len(ids) - CONTEXT, (EVALUATION_WINDOWS,), generator=generator)
    return windows(ids, starts)


def weights_loss(width: int, weights: dict[str, torch.Tensor]) -> float:
    """Held-out loss (nats per character) of a ResMLP of `width` with `weights` (names and shapes
    checked by load_state_dict: ValueError on a mismatch); inf when they are not finite."""
    if not all(bool(torch.isfinite(w).all()) for w in weights.values()):
        return float("inf")
    model = ResMLP(width)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(f"weights do not fit a width-{width} ResMLP: {str(exc).splitlines()[0]}") from None
    contexts, targets = evaluation_windows()
    loss = heldout_loss(model, contexts, targets)
    return loss if loss == loss else float("inf")  # NaN logits: as diverged as inf
