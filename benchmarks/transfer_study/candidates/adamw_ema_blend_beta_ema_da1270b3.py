"""adamw_ema_blend_beta_ema: mutated from adamw_ema x adamw_beta2_beta1 by optforge's mutate proposer."""
import math
import torch
HPARAMS = {'lr': 0.001, 'beta1': 0.9, 'beta2': 0.999, 'eps': 1e-08, 'weight_decay': 0.01, 'beta_ema': 0.98, 'beta1_2': 0.98, 'beta2_2': 0.998, 'blend': 0.5}

def init(param):
    return {'exp_avg': torch.zeros_like(param), 'exp_avg_sq': torch.zeros_like(param), 'ema': torch.zeros_like(param), 'exp_avg_2': torch.zeros_like(param), 'exp_avg_sq_2': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    beta1, beta2, lr = (hp['beta1'], hp['beta2'], hp['lr'])
    m = beta1 * state['exp_avg'] + (1 - beta1) * grad
    v = beta2 * state['exp_avg_sq'] + (1 - beta2) * grad * grad
    ema = hp['beta_ema'] * state['ema'] + (1 - hp['beta_ema']) * v
    v = ema
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    denom = v.sqrt() / math.sqrt(bias_correction2) + hp['eps']
    delta = -lr * hp['weight_decay'] * param - lr / bias_correction1 * m / denom
    beta1_2, beta2_2, lr_2 = (hp['beta1_2'], hp['beta2_2'], hp['lr'])
    m_2 = beta1_2 * state['exp_avg_2'] + (1 - beta1_2) * grad
    v_2 = beta2_2 * state['exp_avg_sq_2'] + (1 - beta2_2) * grad * grad
    bias_correction1_2 = 1 - beta1_2 ** step
    bias_correction2_2 = 1 - beta2_2 ** step
    denom_2 = v_2.sqrt() / math.sqrt(bias_correction2_2) + hp['eps']
    delta_2 = -lr_2 * hp['weight_decay'] * param - lr_2 / bias_correction1_2 * m_2 / denom_2
    return (hp['blend'] * delta + (1 - hp['blend']) * delta_2, {'exp_avg': m, 'exp_avg_sq': v, 'ema': ema, 'exp_avg_2': m_2, 'exp_avg_sq_2': v_2})
