"""The trusted side of the preference task: the reward and KL of a returned policy, the
reward-vs-KL frontier over a loss's beta runs, and its area (the score).

Reward R: mean VADER score of the policy's continuations of the evaluation prompts (two samples per
prompt at T=1). KL: exact KL(policy || reference) over the vocabulary at every sampled position,
summed over the continuation (nats), averaged over samples. The sampling stream is seeded by the
training seed alone, so every candidate is evaluated on the same random numbers (paired).

AUC = (1/cap) * integral over [0, cap] of H(k) dk - R0, where H is the monotone upper concave hull of
(0, R0) and the runs' (KL, R) points, flat after its highest point. Mixing two policies achieves any
point on a chord, so the hull, not the points, is what a loss makes reachable; the cap stops a loss
from buying reward with unbounded drift (reference-free DPO sits at KL ~27 at every beta).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .gpt import CharGPT, sequence_kl
from .reward import rewards

KL_CAP = 8.0  # nats per 64-character continuation: DPO's beta grid spans KL ~1.6-14
REFERENCE_KL = 1e-6  # below this a policy is the reference: its reward is R0 exactly


@dataclass(frozen=True)
class Point:
    kl: float
    reward: float


@torch.no_grad()
def measure(policy: CharGPT, reference: CharGPT, prompts: torch.Tensor, samples: int, continuation: int,
            seed: int) -> Point:
    """Reward and KL of `policy` on `prompts` (each sampled `samples` times), sampling seeded by `seed`."""
    policy.eval()
    repeated = prompts.repeat(samples, 1)
    gen = torch.Generator().manual_seed(2_000_003 + seed)
    continuations = policy.sample(repeated, continuation, gen)
    kl = float(sequence_kl(policy, reference, repeated, continuations).mean())
    return Point(kl, float(rewards(continuations).mean()))


def hull(points: Sequence[Point], r0: float) -> list[Point]:
    """The vertices of the monotone upper concave hull of (0, r0) and `points`, by increasing KL,
    ending at its highest reward (after which the hull is flat)."""
    best: dict[float, float] = {0.0: r0}
    for p in points:
        kl = max(p.kl, 0.0)
        reward = r0 if p.kl < REFERENCE_KL else p.reward
        best[kl] = max(best.get(kl, reward), reward)
    upper: list[tuple[float, float]] = []
    for xy in sorted(best.items()):
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], xy) >= 0:
            upper.pop()
        upper.append(xy)
    top = max(range(len(upper)), key=lambda i: (upper[i][1], -i))
    return [Point(x, y) for x, y in upper[: top + 1]]


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    """> 0 when o -> a -> b turns left (a lies below the chord o-b: not on the upper hull)."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def gain_at(vertices: Sequence[Point], kl: float) -> float:
    """H(kl) - R0: the reward the hull reaches at `kl` above the reference's."""
    r0 = vertices[0].reward
    for a, b in zip(vertices, vertices[1:], strict=False):
        if kl <= b.kl:
            return a.reward + (b.reward - a.reward) * (kl - a.kl) / (b.kl - a.kl) - r0
    return vertices[-1].reward - r0


def auc(vertices: Sequence[Point], cap: float = KL_CAP) -> float:
    """(1/cap) * integral of H - R0 over [0, cap]: the mean reward gain over KL budgets up to `cap`.
    H is linear between vertices and flat after the last, so the trapezoid rule on them is exact."""
    knots = sorted({0.0, cap, *(v.kl for v in vertices if v.kl < cap)})
    gains = [gain_at(vertices, k) for k in knots]
    area = sum((b - a) * (ga + gb) / 2 for a, b, ga, gb in zip(knots, knots[1:], gains, gains[1:], strict=False))
    return area / cap
