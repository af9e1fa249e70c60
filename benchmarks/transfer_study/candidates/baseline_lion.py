"""Lion (EvoLved Sign Momentum), found by program search.

Reference: Chen et al., "Symbolic Discovery of Optimization Algorithms" (NeurIPS 2023), Program 1:

    c = beta1 * m + (1 - beta1) * grad         (interpolation used for the update)
    param <- param - lr * (sign(c) + weight_decay * param)
    m = beta2 * m + (1 - beta2) * grad         (momentum tracked with a slower beta2)

The sign makes every coordinate move by exactly lr, so Lion wants a learning rate 3-10x smaller
than AdamW's (and a weight decay 3-10x larger) for the same effective step: weight_decay 0.1 is
10x the bundled AdamW's 0.01, as the paper recommends.
"""

import torch

HPARAMS = {"lr": 1e-4, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.1}


def init(param):
    return {"exp_avg": torch.zeros_like(param)}


def update(grad, param, state, step, hp):
    m = state["exp_avg"]
    c = hp["beta1"] * m + (1 - hp["beta1"]) * grad
    delta = -hp["lr"] * (torch.sign(c) + hp["weight_decay"] * param)
    new_m = hp["beta2"] * m + (1 - hp["beta2"]) * grad
    return delta, {"exp_avg": new_m}
