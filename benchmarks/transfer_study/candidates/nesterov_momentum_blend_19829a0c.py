"""nesterov_momentum_blend: mutated from nesterov_momentum x nesterov_blend by optforge's mutate proposer."""
import torch
HPARAMS = {'lr': 0.01, 'momentum': 0.98, 'weight_decay': 0.0, 'momentum_2': 0.9, 'mix': 0.75, 'beta_slow': 0.99, 'beta_fast': 0.9, 'blend': 0.75, 'blend_2': 0.5}

def init(param):
    return {'momentum_buffer': torch.zeros_like(param), 'momentum_buffer_2': torch.zeros_like(param), 'momentum_buffer_2_2': torch.zeros_like(param), 'ema': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    g = grad + hp['weight_decay'] * param
    buf = hp['momentum'] * state['momentum_buffer'] + g
    grad_2 = grad
    g_3 = grad + hp['weight_decay'] * param
    buf_3 = hp['momentum_2'] * state['momentum_buffer_2'] + g_3
    grad_2 = grad_2 - grad_2.mean()
    g_2 = grad_2 + hp['weight_decay'] * param
    buf_2 = hp['momentum_2'] * state['momentum_buffer_2_2'] + g_2
    ema = hp['beta_slow'] * state['ema'] + (1 - hp['beta_slow']) * buf_2
    buf_2 = hp['beta_fast'] * state['ema'] + (1 - hp['beta_fast']) * buf_2
    buf_2 = hp['mix'] * buf_2 + (1 - hp['mix']) * grad_2
    return (hp['blend_2'] * (-hp['lr'] * (g + hp['momentum'] * buf)) + (1 - hp['blend_2']) * (hp['blend'] * (-hp['lr'] * (g_3 + hp['momentum_2'] * buf_3)) + (1 - hp['blend']) * (-hp['lr'] * (g_2 + hp['momentum_2'] * buf_2))), {'momentum_buffer': buf, 'momentum_buffer_2': buf_3, 'momentum_buffer_2_2': buf_2, 'ema': ema})
