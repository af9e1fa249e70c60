"""nesterov_weight_decay_sign: mutated from nesterov_weight_decay by optforge's mutate proposer."""
import torch
HPARAMS = {'lr': 0.01, 'momentum': 0.9, 'weight_decay': 0.0001}

def init(param):
    return {'momentum_buffer': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    g = grad + hp['weight_decay'] * param
    g = torch.sign(g)
    buf = hp['momentum'] * state['momentum_buffer'] + g
    return (-hp['lr'] * (g + hp['momentum'] * buf), {'momentum_buffer': buf})
