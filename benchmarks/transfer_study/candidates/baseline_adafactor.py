"""Adafactor: Adam-style scaling from a factored second moment, with relative steps and clipping.

Reference: Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost"
(ICML 2018): factored second moments, update clipping, an increasing beta2 and relative step
sizes, without momentum, in the form of torch.optim.Adafactor (torch 2.13,
torch/optim/_adafactor.py), whose defaults and single-tensor arithmetic this file keeps (t counts
from 1, RMS(x) = ||x||_2 / sqrt(numel)):

    beta2_t = 1 - t^beta2_decay                        (beta2_decay = -0.8: 0 at t = 1, then -> 1)
    rho_t = min(lr, 1 / sqrt(t));  alpha_t = max(eps2, RMS(param)) * rho_t   (relative step size)
    a tensor of 2+ dims is factored over its last two dims [..., m, n]:
        R = beta2_t * R + (1 - beta2_t) * mean(grad^2, dim=-1)     ([..., m, 1], row factor)
        C = beta2_t * C + (1 - beta2_t) * mean(grad^2, dim=-2)     ([..., 1, n], column factor)
        V = R C / max(mean(R, dim=-2), eps1)                        (rank-1 estimate of E[grad^2])
    a vector or scalar keeps the full V = beta2_t * V + (1 - beta2_t) * grad^2
    U = grad / max(sqrt(V), eps1);  U_hat = U / max(1, RMS(U) / d)               (update clipping)
    param <- param - lr * weight_decay * param - alpha_t * U_hat

The paper has no lr: torch uses it as the cap on rho_t (the paper's constant 0.01, hence the
default lr 0.01) and to scale the decoupled weight decay. So a swept lr moves the step only while
lr < 1 / sqrt(t): at lr 0.01 that is the first 10^4 steps.

What differs from torch.optim.Adafactor, and why:
  * eps1 is a number, 1.19e-7: torch's default eps1=None means torch.finfo(param.dtype).eps, which
    is this value for the float32 the tasks train in (2.2e-16 for a float64 parameter).
  * No `maximize` flag: the contract always minimises.
  * State keys: "row_var" is the row factor R of a factored tensor, or the full V of a vector or
    scalar (torch's "variance"); "col_var" is the column factor C, an empty placeholder for a
    vector or scalar.
"""

import math

import torch

HPARAMS = {
    "lr": 0.01,
    "beta2_decay": -0.8,
    "eps1": 1.1920928955078125e-07,
    "eps2": 1e-3,
    "d": 1.0,
    "weight_decay": 0.0,
}


def init(param):
    return {
        "row_var": torch.zeros_like(param[..., :1]) if param.ndim > 1 else torch.zeros_like(param),
        "col_var": torch.zeros_like(param[..., :1, :]) if param.ndim > 1 else param.new_zeros(0),
    }


def update(grad, param, state, step, hp):
    lr, eps1 = hp["lr"], hp["eps1"]
    one_minus_beta2 = step ** hp["beta2_decay"]
    # min(lr, 1/sqrt(t)) as a clamp, so that lr may be a Python float or a 0-d tensor.
    rho = torch.full((), 1 / math.sqrt(step), dtype=torch.float64, device=param.device)
    rho = rho.clamp(max=lr)
    alpha = (param.norm() / math.sqrt(param.numel())).clamp(min=hp["eps2"]) * rho
    if param.ndim > 1:
        row_mean = grad.norm(dim=-1, keepdim=True).square() / grad.shape[-1]
        col_mean = grad.norm(dim=-2, keepdim=True).square() / grad.shape[-2]
        row_var = state["row_var"].lerp(row_mean, one_minus_beta2)
        col_var = state["col_var"].lerp(col_mean, one_minus_beta2)
        v = (row_var @ col_var) / row_var.mean(dim=-2, keepdim=True).clamp(min=eps1)
    else:
        row_var = state["row_var"].lerp(grad * grad, one_minus_beta2)
        col_var = state["col_var"]
        v = row_var
    u = v.clamp(min=eps1 * eps1).rsqrt() * grad
    clip = (u.norm() / (math.sqrt(u.numel()) * hp["d"])).clamp(min=1.0)
    delta = -lr * hp["weight_decay"] * param - (alpha / clip) * u
    return delta, {"row_var": row_var, "col_var": col_var}
