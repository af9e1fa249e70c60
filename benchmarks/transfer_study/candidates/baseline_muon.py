"""Muon: momentum orthogonalised by Newton-Schulz for matrices, AdamW for every other tensor.

Reference: Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024),
https://kellerjordan.github.io/posts/muon/, in the form of torch.optim.Muon (torch 2.13,
torch/optim/_muon.py), whose defaults this file keeps: momentum 0.95, Nesterov, 5 quintic
Newton-Schulz steps with coefficients (3.4445, -4.7750, 2.0315), eps 1e-7, weight decay 0.1 and
the "original" learning-rate adjustment. For a 2-D parameter of shape [A, B] (t counts from 1):

    B_t = momentum * B_{t-1} + (1 - momentum) * grad       (torch: buf.lerp_(grad, 1 - momentum))
    U_t = (1 - momentum) * grad + momentum * B_t            (Nesterov; plain momentum: U_t = B_t)
    X = U_t / max(||U_t||_F, eps), transposed when A > B (so X X^T is the smaller Gram matrix)
    5 times:  G = X X^T;  X = a X + (b G + c G^2) X                (then transposed back)
    param <- param - lr * weight_decay * param - lr * sqrt(max(1, A / B)) * X

torch.optim.Muon refuses every parameter that is not 2-D, and its documentation prescribes AdamW
for those (biases, norms, scalars). Here they take AdamW (torch.optim.AdamW's rule, as in adamw.py)
at lr * adamw_lr_ratio, so the sweep scales both branches together. The defaults are torch's
documented recipe: Muon at lr 0.02, momentum 0.95 with AdamW at 3e-4 (adamw_lr_ratio 0.015 =
3e-4 / 0.02) and weight decay 0.01, torch.optim.AdamW's betas and eps.

What differs from torch.optim.Muon, and why:
  * Newton-Schulz runs in the parameter's dtype (float32 in the tasks); torch casts to bfloat16,
    a GPU speed trick that changes each update by ~1-2% (relative Frobenius norm, measured on
    random matrices) and would make a float64 run not float64. Against torch the steps agree to
    that bf16 noise, and exactly (to float rounding) with torch's iteration minus the cast.
  * The rule sees one tensor, not its role: a 2-D embedding or output head takes Muon, where
    Jordan's recipe gives those to AdamW. 3-D+ tensors (conv kernels) take AdamW, as torch says;
    Jordan's reference flattens them to matrices instead.
  * adjust_lr_fn is fixed to torch's default ("original"); "match_rms_adamw" (0.2 * sqrt(max(A,B))
    instead of sqrt(max(1, A/B))) is not offered.
  * State keys: "exp_avg" is Muon's momentum buffer (an EMA of gradients, as torch's lerp makes
    it) or AdamW's first moment; "exp_avg_sq" is AdamW's second moment, an empty placeholder for a
    matrix (Muon needs one buffer).
"""

import math

import torch

HPARAMS = {
    "lr": 0.02,
    "momentum": 0.95,
    "nesterov": 1.0,
    "eps": 1e-7,
    "weight_decay": 0.1,
    "adamw_lr_ratio": 0.015,
    "adamw_beta1": 0.9,
    "adamw_beta2": 0.999,
    "adamw_eps": 1e-8,
    "adamw_weight_decay": 0.01,
}

# Jordan's quintic (torch.optim._muon's DEFAULT_A/B/C and DEFAULT_NS_STEPS): the coefficients
# maximise the slope at zero, so 5 steps take every singular value to roughly Uniform(0.5, 1.5).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5


def _orthogonalize(matrix, eps):
    a, b, c = NS_COEFFICIENTS
    tall = matrix.shape[0] > matrix.shape[1]
    x = matrix.mT if tall else matrix
    x = x / x.norm().clamp(min=eps)  # Frobenius norm >= spectral norm: singular values <= 1
    for _ in range(NS_STEPS):
        gram = x @ x.mT
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return x.mT if tall else x


def init(param):
    return {
        "exp_avg": torch.zeros_like(param),
        "exp_avg_sq": param.new_zeros(0) if param.ndim == 2 else torch.zeros_like(param),
    }


def update(grad, param, state, step, hp):
    lr = hp["lr"]
    if param.ndim == 2:
        m = state["exp_avg"].lerp(grad, 1 - hp["momentum"])
        v = state["exp_avg_sq"]
        direction = grad.lerp(m, hp["momentum"]) if hp["nesterov"] else m
        rows, cols = param.shape
        adjusted_lr = lr * math.sqrt(max(1.0, rows / cols))
        orthogonal = _orthogonalize(direction, hp["eps"])
        delta = -lr * hp["weight_decay"] * param - adjusted_lr * orthogonal
    else:
        beta1, beta2 = hp["adamw_beta1"], hp["adamw_beta2"]
        adamw_lr = lr * hp["adamw_lr_ratio"]
        m = beta1 * state["exp_avg"] + (1 - beta1) * grad
        v = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad
        denom = v.sqrt() / math.sqrt(1 - beta2**step) + hp["adamw_eps"]
        delta = (
            -adamw_lr * hp["adamw_weight_decay"] * param
            - (adamw_lr / (1 - beta1**step)) * m / denom
        )
    return delta, {"exp_avg": m, "exp_avg_sq": v}
