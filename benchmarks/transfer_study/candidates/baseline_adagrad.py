"""Adagrad (torch.optim.Adagrad semantics, lr_decay 0, initial accumulator 0).

Reference: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
Stochastic Optimization" (JMLR 2011), diagonal version:

    g = grad + weight_decay * param
    sum = sum + g^2                              (per-coordinate sum of squared gradients)
    param <- param - lr * g / (sqrt(sum) + eps)
"""

import torch

HPARAMS = {"lr": 1e-2, "eps": 1e-10, "weight_decay": 0.0}


def init(param):
    return {"sum": torch.zeros_like(param)}


def update(grad, param, state, step, hp):
    g = grad + hp["weight_decay"] * param
    total = state["sum"] + g * g
    delta = -hp["lr"] * g / (total.sqrt() + hp["eps"])
    return delta, {"sum": total}
