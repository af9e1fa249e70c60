"""adamw_del_l2: mutated from adamw by optforge's mutate proposer."""
import math
import torch
HPARAMS = {'lr': 0.001, 'beta1': 0.9, 'beta2': 0.999, 'weight_decay': 0.01, 'l2': 0.001}

def init(param):
    return {'exp_avg': torch.zeros_like(param), 'exp_avg_sq': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    beta1, beta2, lr = (hp['beta1'], hp['beta2'], hp['lr'])
    m = beta1 * state['exp_avg'] + (1 - beta1) * grad
    v = beta2 * state['exp_avg_sq'] + (1 - beta2) * grad * grad
    v = v + hp['l2'] * param
    bias_correction1 = 1 - beta1 ** step
    delta = -lr * hp['weight_decay'] * param - lr / bias_correction1 * m / v
    return (delta, {'exp_avg': m, 'exp_avg_sq': v})
