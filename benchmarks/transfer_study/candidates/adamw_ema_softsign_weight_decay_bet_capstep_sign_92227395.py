"""adamw_ema_softsign_weight_decay_bet_capstep_sign: mutated from adamw_ema_softsign_weight_decay_beta1 by optforge's mutate proposer."""
import math
import torch
HPARAMS = {'lr': 0.001, 'beta1': 0.5, 'beta2': 0.999, 'eps': 1e-08, 'weight_decay': 0.02, 'beta_ema': 0.9}

def init(param):
    return {'exp_avg': torch.zeros_like(param), 'exp_avg_sq': torch.zeros_like(param), 'ema': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    beta1, beta2, lr = (hp['beta1'], hp['beta2'], hp['lr'])
    m = beta1 * state['exp_avg'] + (1 - beta1) * grad
    v = beta2 * state['exp_avg_sq'] + (1 - beta2) * grad * grad
    ema = hp['beta_ema'] * state['ema'] + (1 - hp['beta_ema']) * v
    ema = torch.sign(ema)
    ema = ema / (1 + ema.abs())
    v = ema
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    denom = v.sqrt() / math.sqrt(bias_correction2) + hp['eps']
    delta = -lr * hp['weight_decay'] * param - lr / bias_correction1 * m / denom
    return (torch.clamp(delta, -1.0 * hp['lr'], 1.0 * hp['lr']), {'exp_avg': m, 'exp_avg_sq': v, 'ema': ema})
