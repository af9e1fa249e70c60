"""adam_blend_eps_eps: mutated from adam x nesterov_momentum by optforge's mutate proposer."""
import math
import torch
HPARAMS = {'lr': 0.001, 'beta1': 0.9, 'beta2': 0.999, 'eps': 1.0000000000000002e-10, 'weight_decay': 0.0, 'momentum': 0.98, 'blend': 0.25}

def init(param):
    return {'exp_avg': torch.zeros_like(param), 'exp_avg_sq': torch.zeros_like(param), 'momentum_buffer': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    beta1, beta2 = (hp['beta1'], hp['beta2'])
    g = grad + hp['weight_decay'] * param
    m = beta1 * state['exp_avg'] + (1 - beta1) * g
    v = beta2 * state['exp_avg_sq'] + (1 - beta2) * g * g
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    denom = v.sqrt() / math.sqrt(bias_correction2) + hp['eps']
    delta = -(hp['lr'] / bias_correction1) * m / denom
    g_2 = grad + hp['weight_decay'] * param
    buf = hp['momentum'] * state['momentum_buffer'] + g_2
    return (hp['blend'] * delta + (1 - hp['blend']) * (-hp['lr'] * (g_2 + hp['momentum'] * buf)), {'exp_avg': m, 'exp_avg_sq': v, 'momentum_buffer': buf})
