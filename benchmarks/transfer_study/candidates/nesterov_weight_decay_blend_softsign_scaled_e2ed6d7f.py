"""nesterov_weight_decay_blend_softsign_scaled: mutated from nesterov_weight_decay x adam_graft_interp by optforge's mutate proposer."""
import torch
import math
HPARAMS = {'lr': 0.01, 'momentum': 0.9, 'weight_decay': 0.0001, 'beta1': 0.9, 'beta2': 0.999, 'eps': 1e-08, 'beta_slow': 0.99, 'beta_fast': 0.9, 'blend': 0.25}

def init(param):
    return {'momentum_buffer': torch.zeros_like(param), 'exp_avg': torch.zeros_like(param), 'exp_avg_sq': torch.zeros_like(param), 'ema': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    g = grad + hp['weight_decay'] * param
    buf = hp['momentum'] * state['momentum_buffer'] + g
    beta1, beta2 = (hp['beta1'], hp['beta2'])
    g_2 = grad + hp['weight_decay'] * param
    m = beta1 * state['exp_avg'] + (1 - beta1) * g_2
    m = m / (0.1 + m.abs())
    v = beta2 * state['exp_avg_sq'] + (1 - beta2) * g_2 * g_2
    ema = hp['beta_slow'] * state['ema'] + (1 - hp['beta_slow']) * v
    v = hp['beta_fast'] * state['ema'] + (1 - hp['beta_fast']) * v
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    denom = v.sqrt() / math.sqrt(bias_correction2) + hp['eps']
    delta = -(hp['lr'] / bias_correction1) * m / denom
    return (hp['blend'] * (-hp['lr'] * (g + hp['momentum'] * buf)) + (1 - hp['blend']) * delta, {'momentum_buffer': buf, 'exp_avg': m, 'exp_avg_sq': v, 'ema': ema})
