"""signsgd_relstep_blend_scaled_atan_b_blend_op_del: mutated from signsgd_relstep_blend_scaled_atan_beta1 x signsgd by optforge's mutate proposer."""
import torch
HPARAMS = {'lr': 0.001, 'weight_decay': 0.0, 'beta1': 0.98, 'weight_decay_2': 0.2, 'blend': 0.75, 'blend_2': 0.75}

def init(param):
    return {'exp_avg': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    grad_3 = grad
    grad_2 = grad
    grad = grad / torch.clamp(param.square().mean().atan(), min=0.0001)
    m = state['exp_avg']
    c = hp['beta1'] * m + (1 - hp['beta1']) * grad_2
    delta = -hp['lr'] * (torch.sign(c) + hp['weight_decay_2'] * param)
    return (hp['blend_2'] * (hp['blend'] * (-hp['lr'] * (torch.sign(grad) + hp['weight_decay'] * param)) + (1 - hp['blend']) * delta) + (1 - hp['blend_2']) * (-hp['lr'] * (torch.sign(grad_3) + hp['weight_decay'] * param)), {'exp_avg': m})
