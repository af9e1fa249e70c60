"""nesterov_blend: mutated from nesterov x nesterov_center_mix_interp by optforge's mutate proposer."""
import torch
HPARAMS = {'lr': 0.01, 'momentum': 0.9, 'weight_decay': 0.0, 'mix': 0.75, 'beta_slow': 0.99, 'beta_fast': 0.9, 'blend': 0.75}

def init(param):
    return {'momentum_buffer': torch.zeros_like(param), 'momentum_buffer_2': torch.zeros_like(param), 'ema': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    grad_2 = grad
    g = grad + hp['weight_decay'] * param
    buf = hp['momentum'] * state['momentum_buffer'] + g
    grad_2 = grad_2 - grad_2.mean()
    g_2 = grad_2 + hp['weight_decay'] * param
    buf_2 = hp['momentum'] * state['momentum_buffer_2'] + g_2
    ema = hp['beta_slow'] * state['ema'] + (1 - hp['beta_slow']) * buf_2
    buf_2 = hp['beta_fast'] * state['ema'] + (1 - hp['beta_fast']) * buf_2
    buf_2 = hp['mix'] * buf_2 + (1 - hp['mix']) * grad_2
    return (hp['blend'] * (-hp['lr'] * (g + hp['momentum'] * buf)) + (1 - hp['blend']) * (-hp['lr'] * (g_2 + hp['momentum'] * buf_2)), {'momentum_buffer': buf, 'momentum_buffer_2': buf_2, 'ema': ema})
