"""A small character-level GPT (2 layers, width 64, 4 heads, context 96, tied head: 110k weights).

It is the reference model and the initial policy of the preference task. Written out (no
nn.MultiheadAttention) so that it runs with a KV cache when sampling and under torch.func when
several policies are stacked.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class GPTConfig:
    vocab: int = 65
    context: int = 96
    width: int = 64
    depth: int = 2
    heads: int = 4

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class CharGPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab, config.width)
        self.position = nn.Parameter(torch.randn(config.context, config.width) * 0.02)
        self.blocks = nn.ModuleList(_Block(config.width, config.heads) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.width)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, ids: Tensor) -> Tensor:
        """Logits [..., T, vocab] of the next character at every position of `ids` [..., T]."""
        length = ids.shape[-1]
        h = self.embed(ids) + self.position[:length]
        mask = torch.full((length, length), float("-inf"), device=ids.device).triu(1)
        for block in self.blocks:
            h, _ = block(h, mask)
        return self.norm(h) @ self.embed.weight.T  # tied head

    @torch.no_grad()
    def sample(self, prompts: Tensor, steps: int, generator: torch.Generator, temperature: float = 1.0) -> Tensor:
        """Continue `prompts` [N, P] by `steps` characters sampled at `temperature` (a KV cache keeps
        each step linear in the length). Returns the continuations [N, steps]; the same generator
        state gives the same uniforms, so two models sampled with one seed share their randomness."""
        assert prompts.shape[1] + steps <= self.config.context, "prompt and continuation exceed the context"
        caches: list[tuple[Tensor, Tensor] | None] = [None] * len(self.blocks)
        logits = self._extend(prompts, 0, caches)
        out = []
        for step in range(steps):
            probs = F.softmax(logits / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
            out.append(nxt)
            if step + 1 < steps:
                logits = self._extend(nxt, prompts.shape[1] + step, caches)
        return torch.cat(out, dim=1)

    def _extend(self, ids: Tensor, start: int, caches: list[tuple[Tensor, Tensor] | None]) -> Tensor:
        """Feed `ids` [N, t] at positions start.. with the cached keys and values; the last position's logits."""
        t = ids.shape[1]
        h = self.embed(ids) + self.position[start : start + t]
        mask = torch.full((t, start + t), float("-inf")).triu(start + 1)
        for i, block in enumerate(self.blocks):
            h, caches[i] = block(h, mask, caches[i])
        return (self.norm(h[:, -1]) @ self.embed.weight.T)


class _Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)

    def forward(
        self, h: Tensor, mask: Tensor, cache: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        *batch, length, width = h.shape
        q, k, v = self.qkv(self.norm1(h)).split(width, dim=-1)
        shape = (*batch, length, self.heads, width // self.heads)
        q, k, v = (x.reshape(shape).transpose(-2, -3) for x in (q, k, v))
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=-2), torch.cat([cache[1], v], dim=-2)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(width // self.heads) + mask
        out = (att.softmax(-1) @ v).transpose(-2, -3).reshape(*batch, length, width)
        h = h + self.proj(out)
        h = h + self.down(F.gelu(self.up(self.norm2(h))))
        return h, (k, v)


def continuation_logps(model: nn.Module, prompts: Tensor, continuations: Tensor) -> Tensor:
    """Log-probability of each continuation [N, C] given its prompt [N, P], summed over its C
    characters: [N]. Differentiable (the policy's side of a preference loss)."""
    ids = torch.cat([prompts, continuations], dim=1)
    logits = model(ids[:, :-1])[:, prompts.shape[1] - 1 :]
    return torch.gather(F.log_softmax(logits, dim=-1), 2, continuations.unsqueeze(-1)).squeeze(-1).sum(1)


@torch.no_grad()
def sequence_kl(policy: nn.Module, reference: nn.Module, prompts: Tensor, continuations: Tensor) -> Tensor:
    """Exact KL(policy || reference) over the vocabulary at each continuation position, summed over
    the continuation: [N] nats (per continuation, along the policy's own samples)."""
    ids = torch.cat([prompts, continuations], dim=1)[:, :-1]
    start = prompts.shape[1] - 1
    lp = F.log_softmax(policy(ids)[:, start:], dim=-1)
    lq = F.log_softmax(reference(ids)[:, start:], dim=-1)
    return (lp.exp() * (lp - lq)).sum(-1).sum(-1)
