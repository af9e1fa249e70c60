"""LRML / DiscoPOP: the log-ratio modulated loss the DiscoPOP search discovered (tau = 0.05).

Reference: Lu, Holt, Fanconi, Chan, Foerster, van der Schaar & Lange, "Discovering Preference
Optimization Algorithms with and for Large Language Models" (NeurIPS 2024), section 5; TRL:
loss_type="discopop". A sigmoid gate of the scaled margin mixes the logistic (DPO) loss, for small
margins, with an exponential loss, for large ones:

    margin = (policy_chosen - policy_rejected) - (reference_chosen - reference_rejected)
    x      = beta * margin
    gate   = sigmoid(x / tau)
    loss   = (1 - gate) * -log sigmoid(x) + gate * exp(-x)

(The paper's appendix E.6 has an older variant, sigmoid(margin) without tau; this is the published one.)
Each argument is [B] log-probs summed over a response's tokens; returns per-pair losses [B].
"""

import torch
import torch.nn.functional as F

TAU = 0.05


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    margin = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = beta * margin
    gate = torch.sigmoid(x / TAU)
    return (1 - gate) * -F.logsigmoid(x) + gate * torch.exp(-x)
