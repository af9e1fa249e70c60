"""signsgd_relstep_blend_scaled: mutated from signsgd_relstep x lion_weight_decay by optforge's mutate proposer."""
import torch
HPARAMS = {'lr': 0.001, 'weight_decay': 0.0, 'beta1': 0.9, 'beta2': 0.99, 'weight_decay_2': 0.2, 'blend': 0.75}

def init(param):
    return {'exp_avg': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    grad_2 = grad
    grad = grad * torch.clamp(param.square().mean().sqrt(), min=0.0001)
    m = state['exp_avg']
    c = hp['beta1'] * m + (1 - hp['beta1']) * grad_2
    delta = -hp['lr'] * (torch.sign(c) + hp['weight_decay_2'] * param)
    new_m = hp['beta2'] * m + (1 - hp['beta2']) * grad_2
    return (hp['blend'] * (-hp['lr'] * (torch.sign(grad) + hp['weight_decay'] * param)) + (1 - hp['blend']) * delta, {'exp_avg': new_m})
