"""nesterov_momentum_graft_weight_decay: mutated from nesterov_momentum x adam by optforge's mutate proposer."""
import torch
import math
HPARAMS = {'lr': 0.001, 'weight_decay': 0.01, 'momentum': 0.98}

def init(param):
    return {'momentum_buffer': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    g = grad + hp['weight_decay'] * param
    buf = hp['momentum'] * state['momentum_buffer'] + g
    return (-hp['lr'] * (g + hp['momentum'] * buf), {'momentum_buffer': buf})
