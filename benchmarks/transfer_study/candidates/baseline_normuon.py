"""NorMuon: Muon whose orthogonalised update is normalised per neuron (row) by a second moment.

Reference: Li, Liu, Liang, Chen & Zhao, "NorMuon: Making Muon more efficient and scalable"
(arXiv 2510.05491, 2025), as the authors' normuon.py (github.com/zichongli5/NorMuon) computes it.
For a 2-D parameter of shape [A, B], after Muon's momentum and Newton-Schulz step (muon.py, same
defaults) has given the orthogonalised update O (t counts from 1):

    v_t = beta2 * v_{t-1} + (1 - beta2) * mean(O^2, dim=-1)        ([A, 1]: one number per row)
    N = O / (sqrt(v_t) + 1e-10);  N = N * ||O||_F / (||N||_F + 1e-10)    (same Frobenius norm as O)
    param <- param - lr * weight_decay * param - lr * sqrt(max(1, A / B)) * N

Muon's singular values are near 1, but the rows (output neurons of a [out, in] weight) of O can
still have very different norms; dividing by each row's running RMS evens them out, and the
rescale keeps Muon's overall step size, so Muon's learning rate carries over. Every tensor that is
not 2-D takes AdamW at lr * adamw_lr_ratio, exactly as in muon.py.

What differs from the reference, and why:
  * The paper writes the step as 0.2 * lr * sqrt(A * B) / ||N||_F (matching AdamW's update RMS)
    with plain momentum; this follows the authors' released code instead (Nesterov momentum,
    norm-preserving rescale, Muon's sqrt(max(1, A / B)) factor, lr 0.02), so that at equal
    hyperparameters NorMuon and muon.py differ only by the per-row normalisation.
  * weight_decay defaults to 0.1 as in muon.py (torch.optim.Muon's default), not the released
    class's 0, for the same reason.
  * Newton-Schulz runs in the parameter's dtype rather than bfloat16 and normalises by
    max(||X||_F, eps) (torch.optim.Muon) rather than ||X||_F + eps (Jordan's code): see muon.py.
  * Non-2-D tensors take AdamW (the released code flattens 4-D conv kernels to matrices).
  * State keys: "exp_avg" is the momentum buffer (AdamW's first moment for non-matrices);
    "exp_avg_sq" is v_t, [A, 1] for a matrix, AdamW's second moment otherwise.

Why NorMuon rather than Schedule-Free AdamW (Defazio et al. 2024): Schedule-Free takes gradients
at one sequence of points (y) and is meant to be evaluated at another (x, an average of the
iterates). This contract evaluates exactly the weights the caller holds after param += delta, so
Schedule-Free would either be scored at its gradient points or need the caller to swap weights
before every evaluation, which the contract has no hook for.
"""

import math

import torch

HPARAMS = {
    "lr": 0.02,
    "momentum": 0.95,
    "nesterov": 1.0,
    "beta2": 0.95,
    "eps": 1e-7,
    "weight_decay": 0.1,
    "adamw_lr_ratio": 0.015,
    "adamw_beta1": 0.9,
    "adamw_beta2": 0.999,
    "adamw_eps": 1e-8,
    "adamw_weight_decay": 0.01,
}

# Jordan's quintic Newton-Schulz iteration, as in muon.py (torch.optim._muon's defaults).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
# The authors' guard on both divisions of the normalisation (normuon.py: .add_(1e-10)).
NORM_EPS = 1e-10


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
        "exp_avg_sq": torch.zeros_like(param[:, :1] if param.ndim == 2 else param),
    }


def update(grad, param, state, step, hp):
    lr = hp["lr"]
    if param.ndim == 2:
        m = state["exp_avg"].lerp(grad, 1 - hp["momentum"])
        direction = grad.lerp(m, hp["momentum"]) if hp["nesterov"] else m
        orthogonal = _orthogonalize(direction, hp["eps"])
        row_mean_sq = (orthogonal * orthogonal).mean(dim=-1, keepdim=True)
        v = state["exp_avg_sq"].lerp(row_mean_sq, 1 - hp["beta2"])
        normalized = orthogonal / (v.sqrt() + NORM_EPS)
        normalized = normalized * (orthogonal.norm() / (normalized.norm() + NORM_EPS))
        rows, cols = param.shape
        adjusted_lr = lr * math.sqrt(max(1.0, rows / cols))
        delta = -lr * hp["weight_decay"] * param - adjusted_lr * normalized
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
