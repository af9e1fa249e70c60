"""Cross-entropy (negative log-likelihood of the softmax), the standard classification loss.

Reference: e.g. Goodfellow, Bengio & Courville, "Deep Learning" (2016), section 6.2.2.3.
Equal to torch.nn.functional.cross_entropy(logits, targets):

    loss = mean_i [ -log softmax(logits_i)[targets_i] ]

logits: [B, C] float; targets: [B] long class indices; returns a scalar.
"""

import torch.nn.functional as F


def loss(logits, targets):
    log_probs = F.log_softmax(logits, dim=-1)
    return -log_probs.gather(-1, targets.unsqueeze(-1)).mean()
