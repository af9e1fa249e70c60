"""Trusted scoring: held-out metrics from the weights a run produced, and scores against tuned AdamW.

Nothing here trusts what a candidate's process reported: metrics are recomputed from returned
weights on held-out data that was never loaded into the sandbox.

The score of a task is a speed-up against tuned AdamW, on the curve of the held-out metric averaged
over seeds (seeds are paired: seed s has the same initial weights and minibatches for both). Let
t_ref be the first step at which AdamW reaches its own final value:
- when the candidate ends at or below AdamW's final value, score = t_ref / t_c, where t_c is the
  first step at which the candidate reaches that value ("how many times fewer steps it needs"),
  and never below 1;
- otherwise score = t_a / t_ref, where t_a is the first step at which AdamW reaches the candidate's
  final value ("the fraction of its own time AdamW needs to do as well"), below 1.
A tie scores exactly 1.0; ending better never scores below ending worse; the score does not jump
when AdamW plateaus early (both branches are measured against t_ref, not the budget). We chose a
step speed-up over a loss ratio because it means the same on every task (a loss ratio depends on
each task's irreducible loss) and it is what AlgoPerf and the optimizer-benchmark literature report
(time to target). Reaching times are interpolated linearly between checkpoints; the score is capped
at the number of checkpoints (we cannot resolve faster) and floored at SCORE_FLOOR (no progress).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .data import Split
from .proxy import ProxyTask
from .training import batched_forward

SCORE_FLOOR = 0.01
BOOTSTRAP_SAMPLES = 1000
# Held-out windows of the language task: fixed, evenly spaced, so every candidate sees the same text.
LANGUAGE_EVAL_WINDOWS = 64


def heldout_metric_name(task: ProxyTask, kind: str) -> str:
    """The metric a kind is judged by: a loss candidate must not be judged by its own loss."""
    if task.objective == "regression":
        return "mse"
    return "error" if kind == "loss" else "cross_entropy"


@torch.no_grad()
def heldout_curves(
    task: ProxyTask, heldout: Split, checkpoints: list[dict[str, torch.Tensor]], metric: str
) -> np.ndarray:
    """[S, K] held-out metric per seed at each checkpoint (K = len(checkpoints))."""
    x, y = _eval_inputs(task, heldout)
    columns = []
    for weights in checkpoints:
        n_seeds = next(iter(weights.values())).shape[0]
        buffers = _buffers(task, n_seeds)
        out = batched_forward(task, weights, buffers, x.expand(n_seeds, *x.shape))
        columns.append(_metric(out, y, metric))
    return torch.stack(columns, dim=1).double().numpy()


def _eval_inputs(task: ProxyTask, heldout: Split) -> tuple[torch.Tensor, torch.Tensor]:
    if task.objective != "language":
        return heldout.x, heldout.y
    starts = torch.linspace(0, len(heldout.x) - task.context - 2, LANGUAGE_EVAL_WINDOWS).long()
    tokens = heldout.x[starts[:, None] + torch.arange(task.context + 1)]
    return tokens[:, :-1], tokens[:, 1:]


def _buffers(task: ProxyTask, n_seeds: int) -> dict[str, torch.Tensor]:
    model = task.make_model()
    return {n: b.expand(n_seeds, *b.shape) for n, b in model.named_buffers()}


def _metric(out: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "mse":
        return ((out.squeeze(-1) - y) ** 2).mean(-1)
    logits = out.reshape(out.shape[0], -1, out.shape[-1])
    targets = y.reshape(-1).expand(out.shape[0], -1)
    if metric == "error":
        return (logits.argmax(-1) != targets).double().mean(-1)
    ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    return ce.view(targets.shape).mean(-1)


def reach_step(curve: np.ndarray, steps: np.ndarray, target: float) -> float:
    """First step at which `curve` is <= target, interpolated linearly; inf if it never is."""
    below = np.nonzero(curve <= target)[0]
    if len(below) == 0:
        return math.inf
    i = int(below[0])
    if i == 0:
        return float(steps[0])
    prev, cur = curve[i - 1], curve[i]
    frac = (prev - target) / (prev - cur) if prev != cur else 1.0
    return float(steps[i - 1] + frac * (steps[i] - steps[i - 1]))


def speedup(candidate: np.ndarray, reference: np.ndarray, steps: np.ndarray) -> float:
    """Score of a mean held-out curve against the reference's (see the module docstring)."""
    cap = float(len(steps) - 1)
    t_ref = reach_step(reference, steps, reference[-1])  # when AdamW first reached its final value
    if candidate[-1] <= reference[-1]:
        t_c = reach_step(candidate, steps, reference[-1])
        if t_c <= 0:  # both start from the same weights: only possible when AdamW made no progress
            return 1.0 if t_ref <= 0 else cap
        return min(cap, max(1.0, t_ref / t_c))  # ending no worse than AdamW never scores below 1
    if t_ref <= 0:
        return SCORE_FLOOR
    t_a = reach_step(reference, steps, candidate[-1])
    return max(SCORE_FLOOR, min(1.0, t_a / t_ref))


@dataclass(frozen=True)
class TaskScore:
    score: float
    score_ci: tuple[float, float]
    final: float  # mean held-out metric at the end of the budget
    final_ci: tuple[float, float]
    reference_final: float
    paired_diff: float  # mean over seeds of (candidate - reference) final metric
    paired_diff_ci: tuple[float, float]
    bootstrap: np.ndarray  # score under each bootstrap resample of seeds (for aggregate CIs)


def score_task(
    candidate: np.ndarray, reference: np.ndarray, steps: list[int], seed: int = 0
) -> TaskScore:
    """Score [S, K] candidate curves against [S, K] reference curves paired by seed."""
    steps_arr = np.asarray(steps, dtype=float)
    rng = np.random.default_rng(seed)
    n = candidate.shape[0]
    resamples = rng.integers(0, n, size=(BOOTSTRAP_SAMPLES, n))
    boot = np.array(
        [speedup(candidate[idx].mean(0), reference[idx].mean(0), steps_arr) for idx in resamples]
    )
    diff = candidate[:, -1] - reference[:, -1]
    return TaskScore(
        score=speedup(candidate.mean(0), reference.mean(0), steps_arr),
        score_ci=_percentile_ci(boot),
        final=float(candidate[:, -1].mean()),
        final_ci=mean_ci(candidate[:, -1]),
        reference_final=float(reference[:, -1].mean()),
        paired_diff=float(diff.mean()),
        paired_diff_ci=mean_ci(diff),
        bootstrap=boot,
    )


def aggregate(task_scores: list[TaskScore]) -> tuple[float, tuple[float, float]]:
    """Geometric mean of task scores, with a bootstrap CI from the tasks' own resamples."""
    logs = np.log(np.array([t.score for t in task_scores]))
    boot_logs = np.log(np.stack([t.bootstrap for t in task_scores]))
    return float(np.exp(logs.mean())), _percentile_ci(np.exp(boot_logs.mean(0)))


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean."""
    from scipy import stats

    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return (mean, mean)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * np.std(values, ddof=1) / math.sqrt(n))
    return (mean - half, mean + half)


def _percentile_ci(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return (float(lo), float(hi))
