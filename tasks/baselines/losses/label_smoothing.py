"""Cross-entropy with label smoothing (epsilon = 0.1).

Reference: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision" (CVPR 2016),
section 7. The target distribution puts 1 - eps on the true class and spreads eps uniformly over
all C classes, as torch.nn.functional.cross_entropy(..., label_smoothing=eps) does:

    loss = mean_i [ -(1 - eps) * log p_i[targets_i] - (eps / C) * sum_c log p_i[c] ]

logits: [B, C] float; targets: [B] long class indices; returns a scalar.
"""

import torch.nn.functional as F

EPSILON = 0.1


def loss(logits, targets):
    log_probs = F.log_softmax(logits, dim=-1)
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    uniform = -log_probs.mean(dim=-1)
    return ((1 - EPSILON) * nll + EPSILON * uniform).mean()
