"""The residual-MLP character LM whose width a scaling rule scales (the spec's "ResMLP char-LM").

Reads 32 characters, predicts the next:

    h = sum over positions p of E[p, x_p]               embedding group, init N(0, 1/32)
    h = h + W2 relu(W1 LN(h))   (2 blocks, no biases)    hidden group, init N(0, 1/fan_in)
    logits = R LN(h) + b                                output group R (zero init); vector: b, LNs

Init and architecture are fixed: the only thing a rule changes is each group's AdamW learning rate
and weight decay. With the 1/32 embedding variance, h starts at unit scale at every width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..adapters import SCALING_GROUPS
from .corpus import VOCAB

CONTEXT = 32
BLOCKS = 2
EXPANSION = 4


class ResMLP(nn.Module):
    positions: Tensor  # [0, 1, .., 31], a buffer so that it moves with the model

    def __init__(self, width: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self.width = width
        vocab = len(VOCAB)
        self.embedding = nn.Parameter(torch.randn(CONTEXT, vocab, width, generator=generator) / math.sqrt(CONTEXT))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(BLOCKS))
        self.up = nn.ParameterList(
            nn.Parameter(torch.randn(EXPANSION * width, width, generator=generator) / math.sqrt(width))
            for _ in range(BLOCKS))
        self.down = nn.ParameterList(
            nn.Parameter(torch.randn(width, EXPANSION * width, generator=generator) / math.sqrt(EXPANSION * width))
            for _ in range(BLOCKS))
        self.final_norm = nn.LayerNorm(width)
        self.readout = nn.Parameter(torch.zeros(vocab, width))
        self.readout_bias = nn.Parameter(torch.zeros(vocab))
        self.register_buffer("positions", torch.arange(CONTEXT), persistent=False)

    def forward(self, context: Tensor) -> Tensor:
        """context: [B, 32] character ids -> logits [B, vocab]."""
        h = self.embedding[self.positions, context.long()].sum(dim=1)
        for norm, up, down in zip(self.norms, self.up, self.down, strict=True):
            h = h + F.linear(torch.relu(F.linear(norm(h), up)), down)
        return F.linear(self.final_norm(h), self.readout, self.readout_bias)

    def groups(self) -> dict[str, list[nn.Parameter]]:
        """The parameters of each of SCALING_GROUPS."""
        vectors = [p for m in [*self.norms, self.final_norm] for p in m.parameters()] + [self.readout_bias]
        groups = {"embedding": [self.embedding], "hidden": [*self.up, *self.down], "output": [self.readout],
                  "vector": vectors}
        assert tuple(groups) == SCALING_GROUPS
        return groups


def parameter_count(width: int) -> int:
    vocab = len(VOCAB)
    return (CONTEXT * vocab * width + BLOCKS * (2 * EXPANSION * width * width + 2 * width)
            + 2 * width + vocab * width + vocab)
