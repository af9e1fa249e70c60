"""signsgd_relstep_blend_scaled_blend: mutated from signsgd_relstep_blend_scaled x adamw_ema by optforge's mutate proposer."""
import torch
import math
HPARAMS = {'lr': 0.001, 'weight_decay': 0.0, 'beta1': 0.9, 'beta2': 0.99, 'weight_decay_2': 0.2, 'blend': 0.75, 'beta2_2': 0.999, 'eps': 1e-08, 'weight_decay_3': 0.01, 'beta_ema': 0.9, 'blend_2': 0.5}

def init(param):
    return {'exp_avg': torch.zeros_like(param), 'exp_avg_2': torch.zeros_like(param), 'exp_avg_sq': torch.zeros_like(param), 'ema': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    grad_3 = grad
    grad_2 = grad
    grad = grad * torch.clamp(param.square().mean().sqrt(), min=0.0001)
    m = state['exp_avg']
    c = hp['beta1'] * m + (1 - hp['beta1']) * grad_2
    delta = -hp['lr'] * (torch.sign(c) + hp['weight_decay_2'] * param)
    new_m = hp['beta2'] * m + (1 - hp['beta2']) * grad_2
    beta1, beta2, lr = (hp['beta1'], hp['beta2_2'], hp['lr'])
    m_2 = beta1 * state['exp_avg_2'] + (1 - beta1) * grad_3
    v = beta2 * state['exp_avg_sq'] + (1 - beta2) * grad_3 * grad_3
    ema = hp['beta_ema'] * state['ema'] + (1 - hp['beta_ema']) * v
    v = ema
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    denom = v.sqrt() / math.sqrt(bias_correction2) + hp['eps']
    delta_2 = -lr * hp['weight_decay_3'] * param - lr / bias_correction1 * m_2 / denom
    return (hp['blend_2'] * (hp['blend'] * (-hp['lr'] * (torch.sign(grad) + hp['weight_decay'] * param)) + (1 - hp['blend']) * delta) + (1 - hp['blend_2']) * delta_2, {'exp_avg': new_m, 'exp_avg_2': m_2, 'exp_avg_sq': v, 'ema': ema})
