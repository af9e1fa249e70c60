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


class DigitsCNN(nn.Module):
    """A small convolutional net on 8x8 digit images given as flat 64-vectors: two 3x3 convolutions
    (the second strided), ReLU, then a linear classifier. The shape of what users train on images,
    at a size a CPU screen can afford."""

    def __init__(self, channels: tuple[int, int] = (8, 16), classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels[0], 3, padding=1)
        self.conv2 = nn.Conv2d(channels[0], channels[1], 3, padding=1, stride=2)
        self.head = nn.Linear(channels[1] * 16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(*x.shape[:-1], 1, 8, 8)
        h = torch.relu(self.conv2(torch.relu(self.conv1(h))))
        return self.head(h.flatten(-3))


class ResidualMLP(nn.Module):
    """Pre-norm residual MLP blocks (LayerNorm -> Linear -> GELU -> Linear, added back), as in
    modern tabular and vision MLPs: the normalised, residual shape most real networks have."""

    def __init__(self, n_in: int, width: int, depth: int, n_out: int):
        super().__init__()
        self.embed = nn.Linear(n_in, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(self.norm(h))


class CharGRU(nn.Module):
    """A one-layer GRU language model over characters, the recurrence written out (torch.func.vmap
    over stacked seed weights runs every op; nn.GRU's fused kernel has no batching rule)."""

    def __init__(self, vocab: int, width: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.input = nn.Linear(width, 3 * width)
        self.hidden = nn.Linear(width, 3 * width)
        self.head = nn.Linear(width, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        xs = self.input(self.embed(ids))  # [..., T, 3W]: the input side of every step at once
        h = xs.new_zeros(*ids.shape[:-1], xs.shape[-1] // 3)
        outputs = []
        for t in range(ids.shape[-1]):
            xr, xz, xn = xs[..., t, :].chunk(3, dim=-1)
            hr, hz, hn = self.hidden(h).chunk(3, dim=-1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            h = (1 - z) * torch.tanh(xn + r * hn) + z * h
            outputs.append(h)
        return self.head(torch.stack(outputs, dim=-2))
