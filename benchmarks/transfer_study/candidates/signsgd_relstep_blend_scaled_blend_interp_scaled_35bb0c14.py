"""signsgd_relstep_blend_scaled_blend_interp_scaled: mutated from signsgd_relstep_blend_scaled_atan_beta1 by optforge's mutate proposer."""
import torch
HPARAMS = {'lr': 0.001, 'weight_decay': 0.0, 'beta1': 0.98, 'beta2': 0.99, 'weight_decay_2': 0.2, 'blend': 0.95, 'beta_slow': 0.99, 'beta_fast': 0.9}

def init(param):
    return {'exp_avg': torch.zeros_like(param), 'ema': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    grad_2 = grad
    grad = grad * torch.clamp(param.square().mean().atan(), min=0.0002)
    m = state['exp_avg']
    c = hp['beta1'] * m + (1 - hp['beta1']) * grad_2
    ema = hp['beta_slow'] * state['ema'] + (1 - hp['beta_slow']) * c
    c = hp['beta_fast'] * state['ema'] + (1 - hp['beta_fast']) * c
    delta = -hp['lr'] * (torch.sign(c) + hp['weight_decay_2'] * param)
    new_m = hp['beta2'] * m + (1 - hp['beta2']) * grad_2
    return (hp['blend'] * (-hp['lr'] * (torch.sign(grad) + hp['weight_decay'] * param)) + (1 - hp['blend']) * delta, {'exp_avg': new_m, 'ema': ema})
