"""RMSprop (torch.optim.RMSprop semantics, not centered).

Reference: Tieleman & Hinton, "Lecture 6.5 - rmsprop", COURSERA: Neural Networks for Machine
Learning (2012), with the optional momentum of PyTorch's implementation:

    g = grad + weight_decay * param
    square_avg = alpha * square_avg + (1 - alpha) * g^2
    buf = momentum * buf + g / (sqrt(square_avg) + eps)   (buf starts at 0)
    param <- param - lr * buf

With the default momentum 0.0 this is param <- param - lr * g / (sqrt(square_avg) + eps).
"""

import torch

HPARAMS = {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0}


def init(param):
    return {"square_avg": torch.zeros_like(param), "momentum_buffer": torch.zeros_like(param)}


def update(grad, param, state, step, hp):
    alpha = hp["alpha"]
    g = grad + hp["weight_decay"] * param
    square_avg = alpha * state["square_avg"] + (1 - alpha) * g * g
    buf = hp["momentum"] * state["momentum_buffer"] + g / (square_avg.sqrt() + hp["eps"])
    return -hp["lr"] * buf, {"square_avg": square_avg, "momentum_buffer": buf}
