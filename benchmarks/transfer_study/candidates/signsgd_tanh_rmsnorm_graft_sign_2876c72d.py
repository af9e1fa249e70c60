"""signsgd_tanh_rmsnorm_graft_sign: mutated from signsgd_tanh_rmsnorm x nesterov_momentum_blend_blend_momentum_3_relstep by optforge's mutate proposer."""
import torch
import math
HPARAMS = {'lr': 0.01, 'weight_decay': 0.0}

def init(param):
    return {}

def update(grad, param, state, step, hp):
    grad = grad / (grad.square().mean().sign() + 1e-08)
    return (-hp['lr'] * (torch.tanh(grad) + hp['weight_decay'] * param), {})
