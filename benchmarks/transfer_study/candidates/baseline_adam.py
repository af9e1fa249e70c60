"""Adam (torch.optim.Adam semantics: weight decay is an L2 term added to the gradient).

Reference: Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015), Algorithm 1,
with eps added after the bias-corrected square root as PyTorch does:

    g = grad + weight_decay * param
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g^2
    m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)        (t = step, counting from 1)
    param <- param - lr * m_hat / (sqrt(v_hat) + eps)
"""

import math

import torch

HPARAMS = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}


def init(param):
    return {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}


def update(grad, param, state, step, hp):
    beta1, beta2 = hp["beta1"], hp["beta2"]
    g = grad + hp["weight_decay"] * param
    m = beta1 * state["exp_avg"] + (1 - beta1) * g
    v = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    denom = v.sqrt() / math.sqrt(bias_correction2) + hp["eps"]
    delta = -(hp["lr"] / bias_correction1) * m / denom
    return delta, {"exp_avg": m, "exp_avg_sq": v}
