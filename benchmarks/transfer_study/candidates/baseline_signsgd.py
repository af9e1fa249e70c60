"""signSGD: step by the sign of the gradient.

Reference: Bernstein, Wang, Azizzadenesheli & Anandkumar, "signSGD: Compressed Optimisation for
Non-Convex Problems" (ICML 2018), Algorithm 1, with optional decoupled weight decay:

    param <- param - lr * (sign(grad) + weight_decay * param)

Every coordinate moves by exactly lr (zero gradients stay put), so the learning rate is a step
length, not a gradient scale.
"""

import torch

HPARAMS = {"lr": 1e-3, "weight_decay": 0.0}


def init(param):
    return {}


def update(grad, param, state, step, hp):
    return -hp["lr"] * (torch.sign(grad) + hp["weight_decay"] * param), {}
