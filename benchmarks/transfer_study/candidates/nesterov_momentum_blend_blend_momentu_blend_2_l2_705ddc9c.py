"""nesterov_momentum_blend_blend_momentu_blend_2_l2: mutated from nesterov_momentum_blend_blend_momentum_3_relstep by optforge's mutate proposer."""
import torch
import math
HPARAMS = {'lr': 0.01, 'momentum': 0.98, 'weight_decay': 0.0, 'momentum_2': 0.9, 'mix': 0.75, 'beta_slow': 0.99, 'beta_fast': 0.9, 'blend': 0.75, 'blend_2': 0.9, 'decoupled_wd': 0.01, 'blend_3': 0.75, 'weight_decay_2': 0.0001, 'beta1': 0.95, 'beta2': 0.999, 'eps': 1e-08, 'beta_slow_2': 0.95, 'beta_fast_2': 0.8, 'momentum_3': 0.5, 'weight_decay_2': 0.0, 'blend_4': 0.5, 'beta_slow_2': 0.98, 'blend_2_2': 0.75, 'blend_5': 0.25, 'l2': 0.001}

def init(param):
    return {'momentum_buffer': torch.zeros_like(param), 'momentum_buffer_2': torch.zeros_like(param), 'momentum_buffer_2_2': torch.zeros_like(param), 'ema': torch.zeros_like(param), 'momentum_buffer_3': torch.zeros_like(param), 'exp_avg': torch.zeros_like(param), 'exp_avg_sq': torch.zeros_like(param), 'ema_2': torch.zeros_like(param), 'momentum_buffer_4': torch.zeros_like(param), 'exp_avg_2': torch.zeros_like(param), 'exp_avg_sq_2': torch.zeros_like(param), 'ema_2_2': torch.zeros_like(param)}

def update(grad, param, state, step, hp):
    g = grad + hp['weight_decay'] * param
    buf = hp['momentum'] * state['momentum_buffer'] + g
    grad_2 = grad
    g_4 = grad + hp['weight_decay'] * param
    buf_4 = hp['momentum_2'] * state['momentum_buffer_2'] + g_4
    grad_2 = grad_2 - grad_2.mean()
    g_2 = grad_2 + hp['weight_decay'] * param
    g_2 = g_2 + hp['l2'] * param
    g_2 = g_2 * torch.clamp(param.square().mean().sqrt(), min=0.001)
    buf_2 = hp['momentum_2'] * state['momentum_buffer_2_2'] + g_2
    ema = hp['beta_slow'] * state['ema'] + (1 - hp['beta_slow']) * buf_2
    buf_2 = hp['beta_fast'] * state['ema'] + (1 - hp['beta_fast']) * buf_2
    buf_2 = hp['mix'] * buf_2 + (1 - hp['mix']) * grad_2
    g_3 = grad + hp['weight_decay'] * param
    buf_3 = hp['momentum_2'] * state['momentum_buffer_3'] + g_3
    beta1, beta2 = (hp['beta1'], hp['beta2'])
    m = beta1 * state['exp_avg'] + (1 - beta1) * grad
    v = beta2 * state['exp_avg_sq'] + (1 - beta2) * grad * grad
    ema_3 = hp['beta_slow_2'] * state['ema_2'] + (1 - hp['beta_slow_2']) * v
    v = hp['beta_fast_2'] * state['ema_2'] + (1 - hp['beta_fast_2']) * v
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    denom = v.exp() / math.sqrt(bias_correction2) + hp['eps']
    delta = -(hp['lr'] / bias_correction1) * m / denom
    g_2_2 = grad + hp['weight_decay_2'] * param
    buf_5 = hp['momentum_3'] * state['momentum_buffer_4'] + g_2_2
    beta1_2, beta2_2 = (hp['beta1'], hp['beta2'])
    g_3_2 = grad + hp['weight_decay_2'] * param
    m_2 = beta1_2 * state['exp_avg_2'] + (1 - beta1_2) * g_3_2
    v_2 = beta2_2 * state['exp_avg_sq_2'] + (1 - beta2_2) * g_3_2 * g_3_2
    ema_2 = hp['beta_slow_2'] * state['ema_2_2'] + (1 - hp['beta_slow_2']) * v_2
    v_2 = hp['beta_fast_2'] * state['ema_2_2'] + (1 - hp['beta_fast_2']) * v_2
    bias_correction1_2 = 1 - beta1_2 ** step
    bias_correction2_2 = 1 - beta2_2 ** step
    denom_2 = v_2.sqrt() / math.sqrt(bias_correction2_2) + hp['eps']
    denom_2 = denom_2.clamp(-0.1, 0.1)
    delta_2 = -(hp['lr'] / bias_correction1_2) * m_2 / denom_2
    return (hp['blend_5'] * torch.clamp(hp['blend_3'] * (-hp['lr'] * (g + hp['momentum'] * buf)) + (1 - hp['blend_3']) * (hp['blend_2'] * (hp['blend'] * (-hp['lr'] * (g_4 + hp['momentum_2'] * buf_4)) + (1 - hp['blend']) * (-hp['lr'] * (g_2 + hp['momentum_2'] * buf_2))) + (1 - hp['blend_2']) * (-hp['lr'] * (g_3 + hp['momentum_2'] * buf_3)) - hp['lr'] * hp['decoupled_wd'] * param), -1.0 * hp['lr'], 1.0 * hp['lr']) + (1 - hp['blend_5']) * (hp['blend_2_2'] * (hp['blend_4'] * delta + (1 - hp['blend_4']) * (-hp['lr'] * buf_5)) + (1 - hp['blend_2_2']) * delta_2), {'momentum_buffer': buf, 'momentum_buffer_2': buf_4, 'momentum_buffer_2_2': buf_2, 'ema': ema, 'momentum_buffer_3': buf_3, 'exp_avg': m, 'exp_avg_sq': v, 'ema_2': ema_3, 'momentum_buffer_4': buf_5, 'exp_avg_2': m_2, 'exp_avg_sq_2': v_2, 'ema_2_2': ema_2})
