"""SGD with Nesterov momentum (torch.optim.SGD(nesterov=True) semantics, dampening 0).

Reference: Nesterov, "A method for solving the convex programming problem with convergence rate
O(1/k^2)" (1983); the deep-learning form of Sutskever et al., "On the importance of initialization
and momentum in deep learning" (ICML 2013), as implemented by PyTorch:

    g   = grad + weight_decay * param          (L2 penalty folded into the gradient)
    buf = momentum * buf + g                   (buf starts at 0, so the first buf is g)
    param <- param - lr * (g + momentum * buf) (look-ahead: gradient plus the next momentum step)
"""

import torch

HPARAMS = {"lr": 1e-2, "momentum": 0.9, "weight_decay": 0.0}


def init(param):
    return {"momentum_buffer": torch.zeros_like(param)}


def update(grad, param, state, step, hp):
    g = grad + hp["weight_decay"] * param
    buf = hp["momentum"] * state["momentum_buffer"] + g
    return -hp["lr"] * (g + hp["momentum"] * buf), {"momentum_buffer": buf}
