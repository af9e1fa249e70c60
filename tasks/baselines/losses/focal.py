"""Focal loss (gamma = 2), multi-class, without the alpha class weighting.

Reference: Lin, Goyal, Girshick, He & Dollar, "Focal Loss for Dense Object Detection"
(ICCV 2017), equation 4. Down-weights examples the model already gets right:

    p_t  = softmax(logits_i)[targets_i]
    loss = mean_i [ -(1 - p_t)^gamma * log p_t ]

With gamma = 0 it is plain cross-entropy. The paper's alpha-balancing is for binary detection
heads with extreme class imbalance and is left out here.
logits: [B, C] float; targets: [B] long class indices; returns a scalar.
"""

import torch.nn.functional as F

GAMMA = 2.0


def loss(logits, targets):
    log_pt = F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    pt = log_pt.exp()
    return (-((1 - pt) ** GAMMA) * log_pt).mean()
