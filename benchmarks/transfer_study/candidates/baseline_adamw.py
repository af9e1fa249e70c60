"""AdamW: Adam with decoupled weight decay (torch.optim.AdamW semantics).

Reference: Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019), Algorithm 2,
in PyTorch's form, where the decay is scaled by the (scheduled) learning rate:

    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad^2
    m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)        (t = step, counting from 1)
    param <- param - lr * weight_decay * param - lr * m_hat / (sqrt(v_hat) + eps)
"""

import math

import torch

HPARAMS = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}


def init(param):
    return {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}


def update(grad, param, state, step, hp):
    beta1, beta2, lr = hp["beta1"], hp["beta2"], hp["lr"]
    m = beta1 * state["exp_avg"] + (1 - beta1) * grad
    v = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    denom = v.sqrt() / math.sqrt(bias_correction2) + hp["eps"]
    delta = -lr * hp["weight_decay"] * param - (lr / bias_correction1) * m / denom
    return delta, {"exp_avg": m, "exp_avg_sq": v}
