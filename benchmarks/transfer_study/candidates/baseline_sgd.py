"""Stochastic gradient descent with optional heavy-ball momentum (torch.optim.SGD semantics).

Reference: Robbins & Monro, "A Stochastic Approximation Method" (1951); momentum as in
Polyak (1964) and Sutskever et al., "On the importance of initialization and momentum in deep
learning" (ICML 2013), in the form PyTorch uses (dampening 0):

    g   = grad + weight_decay * param          (L2 penalty folded into the gradient)
    buf = momentum * buf + g                   (buf starts at 0, so the first buf is g)
    param <- param - lr * buf

With the default momentum 0.0 this is plain SGD: param <- param - lr * g.
"""

import torch

HPARAMS = {"lr": 1e-2, "momentum": 0.0, "weight_decay": 0.0}


def init(param):
    return {"momentum_buffer": torch.zeros_like(param)}


def update(grad, param, state, step, hp):
    g = grad + hp["weight_decay"] * param
    buf = hp["momentum"] * state["momentum_buffer"] + g
    return -hp["lr"] * buf, {"momentum_buffer": buf}
