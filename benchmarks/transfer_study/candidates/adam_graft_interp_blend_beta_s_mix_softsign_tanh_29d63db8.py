"""adam_graft_interp_blend_beta_s_mix_softsign_tanh: mutated from adam_graft_interp_blend_beta_slow_blend_beta1 by optforge's mutate proposer."""
import math
import torch
HPARAMS = {'lr': 0.01, 'weight_decay': 0.0001, 'beta1': 0.95, 'beta2': 0.999, 'eps': 1e-08, 'beta_slow': 0.95, 'beta_fast': 0.9, 'momentum': 0.0, 'weight_decay_2': 0.0, 'blend': 0.5, 'beta_slow_2': 0.99, 'blend_2': 0.75, 'mix': 0.75}

def init(param):
    return {'exp_avg': torch.zeros_like(param), 'exp_avg_sq': torch.zeros_like(param), 'ema': torch.zeros_like(param), 'momentum_buffer': torch.zeros_like(param), 'exp_avg_2': torch.zeros_like(param), 'exp_avg_sq_2': torch.zeros_like(param), 'ema_2': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    beta1, beta2 = (hp['beta1'], hp['beta2'])
    g = grad + hp['weight_decay'] * param
    g = hp['mix'] * g + (1 - hp['mix']) * grad
    m = beta1 * state['exp_avg'] + (1 - beta1) * g
    v = beta2 * state['exp_avg_sq'] + (1 - beta2) * g * g
    ema = hp['beta_slow'] * state['ema'] + (1 - hp['beta_slow']) * v
    v = hp['beta_fast'] * state['ema'] + (1 - hp['beta_fast']) * v
    v = v / (1 + v.abs())
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    denom = v.sqrt() / math.sqrt(bias_correction2) + hp['eps']
    delta = -(hp['lr'] / bias_correction1) * m / denom
    g_2 = grad + hp['weight_decay_2'] * param
    buf = hp['momentum'] * state['momentum_buffer'] + g_2
    beta1_2, beta2_2 = (hp['beta1'], hp['beta2'])
    g_3 = grad + hp['weight_decay'] * param
    m_2 = beta1_2 * state['exp_avg_2'] + (1 - beta1_2) * g_3
    v_2 = beta2_2 * state['exp_avg_sq_2'] + (1 - beta2_2) * g_3 * g_3
    ema_2 = hp['beta_slow_2'] * state['ema_2'] + (1 - hp['beta_slow_2']) * v_2
    v_2 = hp['beta_fast'] * state['ema_2'] + (1 - hp['beta_fast']) * v_2
    bias_correction1_2 = 1 - beta1_2 ** step
    bias_correction2_2 = 1 - beta2_2 ** step
    denom_2 = v_2.sqrt() / math.tanh(bias_correction2_2) + hp['eps']
    delta_2 = -(hp['lr'] / bias_correction1_2) * m_2 / denom_2
    return (hp['blend_2'] * (hp['blend'] * delta + (1 - hp['blend']) * (-hp['lr'] * buf)) + (1 - hp['blend_2']) * delta_2, {'exp_avg': m, 'exp_avg_sq': v, 'ema': ema, 'momentum_buffer': buf, 'exp_avg_2': m_2, 'exp_avg_sq_2': v_2, 'ema_2': ema_2})
