"""Small models of the proxy tasks. Plain nn.Modules: training runs them functionally (torch.func) so
that many seeds train at once as stacked weights."""

from __future__ import annotations

import math

import torch
from torch import nn


def mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers of the given sizes with `activation` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class CharTransformer(nn.Module):
    """A pre-norm decoder-only transformer over characters (GPT-style, learned positions, tied nothing).

    Attention is written out rather than using nn.MultiheadAttention so that torch.func.vmap over
    stacked seed weights works on every op.
    """

    def __init__(self, vocab: int, context: int, width: int, depth: int, heads: int):
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.randn(context, width) * 0.02)
        self.blocks = nn.ModuleList(_Block(width) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)
        self.mask: torch.Tensor
        self.register_buffer("mask", torch.full((context, context), float("-inf")).triu(1), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[-1]
        h = self.embed(ids) + self.position[:length]
        for block in self.blocks:
            h = block(h, self.heads, self.mask[:length, :length])
        return self.head(self.norm(h))


class _Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.ff = mlp([width, 4 * width, width], nn.GELU)

    def forward(self, h: torch.Tensor, heads: int, mask: torch.Tensor) -> torch.Tensor:
        *batch, length, width = h.shape
        q, k, v = self.qkv(self.norm1(h)).split(width, dim=-1)
        shape = (*batch, length, heads, width // heads)
        q, k, v = (t.reshape(shape).transpose(-2, -3) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(width // heads) + mask
        out = (att.softmax(-1) @ v).transpose(-2, -3).reshape(*batch, length, width)
        h = h + self.proj(out)
        return h + self.ff(self.norm2(h))
