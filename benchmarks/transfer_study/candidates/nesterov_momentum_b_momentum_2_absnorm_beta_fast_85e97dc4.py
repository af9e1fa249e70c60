"""nesterov_momentum_b_momentum_2_absnorm_beta_fast: mutated from nesterov_momentum_blend_blend_ble_center_blend_6 by optforge's mutate proposer."""
import torch
HPARAMS = {'lr': 0.01, 'momentum': 0.98, 'weight_decay': 0.0, 'momentum_2': 0.98, 'mix': 0.75, 'beta_slow': 0.99, 'beta_fast': 0.98, 'blend': 0.75, 'blend_2': 0.5, 'decoupled_wd': 0.01, 'blend_3': 0.75, 'blend_4': 0.25, 'blend_5': 0.25, 'blend_6': 0.0}

def init(param):
    return {'momentum_buffer': torch.zeros_like(param), 'momentum_buffer_2': torch.zeros_like(param), 'momentum_buffer_2_2': torch.zeros_like(param), 'ema': torch.zeros_like(param), 'momentum_buffer_3': torch.zeros_like(param), 'momentum_buffer_4': torch.zeros_like(param), 'momentum_buffer_5': torch.zeros_like(param), 'momentum_buffer_6': torch.zeros_like(param), 'momentum_buffer_2_3': torch.zeros_like(param), 'momentum_buffer_2_2_2': torch.zeros_like(param), 'ema_2': torch.zeros_like(param), 'momentum_buffer_3_2': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    g = grad + hp['weight_decay'] * param
    g = g / (g.abs().mean() + 1e-08)
    buf = hp['momentum'] * state['momentum_buffer'] + g
    grad_2 = grad
    g_4 = grad + hp['weight_decay'] * param
    buf_4 = hp['momentum_2'] * state['momentum_buffer_2'] + g_4
    grad_2 = grad_2 - grad_2.mean()
    g_2 = grad_2 + hp['weight_decay'] * param
    buf_2 = hp['momentum_2'] * state['momentum_buffer_2_2'] + g_2
    ema = hp['beta_slow'] * state['ema'] + (1 - hp['beta_slow']) * buf_2
    ema = ema - ema.mean()
    buf_2 = hp['beta_fast'] * state['ema'] + (1 - hp['beta_fast']) * buf_2
    buf_2 = hp['mix'] * buf_2 + (1 - hp['mix']) * grad_2
    g_3 = grad + hp['weight_decay'] * param
    buf_3 = hp['momentum_2'] * state['momentum_buffer_3'] + g_3
    g_5 = grad + hp['weight_decay'] * param
    buf_5 = hp['momentum'] * state['momentum_buffer_4'] + g_5
    g_6 = grad + hp['weight_decay'] * param
    buf_6 = hp['momentum'] * state['momentum_buffer_5'] + g_6
    g_7 = grad + hp['weight_decay'] * param
    buf_7 = hp['momentum'] * state['momentum_buffer_6'] + g_7
    grad_2_2 = grad
    g_4_2 = grad + hp['weight_decay'] * param
    buf_4_2 = hp['momentum_2'] * state['momentum_buffer_2_3'] + g_4_2
    grad_2_2 = grad_2_2 - grad_2_2.mean()
    g_2_2 = grad_2_2 + hp['weight_decay'] * param
    buf_2_2 = hp['momentum_2'] * state['momentum_buffer_2_2_2'] + g_2_2
    ema_2 = hp['beta_slow'] * state['ema_2'] + (1 - hp['beta_slow']) * buf_2_2
    buf_2_2 = hp['beta_fast'] * state['ema_2'] + (1 - hp['beta_fast']) * buf_2_2
    buf_2_2 = hp['mix'] * buf_2_2 + (1 - hp['mix']) * grad_2_2
    g_3_2 = grad + hp['weight_decay'] * param
    buf_3_2 = hp['momentum_2'] * state['momentum_buffer_3_2'] + g_3_2
    return (hp['blend_6'] * (hp['blend_5'] * (hp['blend_4'] * (hp['blend_3'] * (-hp['lr'] * (g + hp['momentum'] * buf)) + (1 - hp['blend_3']) * (hp['blend_2'] * (hp['blend'] * (-hp['lr'] * (g_4 + hp['momentum_2'] * buf_4)) + (1 - hp['blend']) * (-hp['lr'] * (g_2 + hp['momentum_2'] * buf_2))) + (1 - hp['blend_2']) * (-hp['lr'] * (g_3 + hp['momentum_2'] * buf_3)) - hp['lr'] * hp['decoupled_wd'] * param)) + (1 - hp['blend_4']) * (-hp['lr'] * (g_5 + hp['momentum'] * buf_5))) + (1 - hp['blend_5']) * (-hp['lr'] * (g_6 + hp['momentum'] * buf_6))) + (1 - hp['blend_6']) * (hp['blend_3'] * (-hp['lr'] * (g_7 + hp['momentum'] * buf_7)) + (1 - hp['blend_3']) * (hp['blend_2'] * (hp['blend'] * (-hp['lr'] * (g_4_2 + hp['momentum_2'] * buf_4_2)) + (1 - hp['blend']) * (-hp['lr'] * (g_2_2 + hp['momentum_2'] * buf_2_2))) + (1 - hp['blend_2']) * (-hp['lr'] * (g_3_2 + hp['momentum_2'] * buf_3_2)) - hp['lr'] * hp['decoupled_wd'] * param)), {'momentum_buffer': buf, 'momentum_buffer_2': buf_4, 'momentum_buffer_2_2': buf_2, 'ema': ema, 'momentum_buffer_3': buf_3, 'momentum_buffer_4': buf_5, 'momentum_buffer_5': buf_6, 'momentum_buffer_6': buf_7, 'momentum_buffer_2_3': buf_4_2, 'momentum_buffer_2_2_2': buf_2_2, 'ema_2': ema_2, 'momentum_buffer_3_2': buf_3_2})
