"""SLiC: sequence likelihood calibration, the hinge loss on the scaled margin.

Reference: Zhao, Joshi, Liu, Khalman, Saleh & Liu, "SLiC-HF: Sequence Likelihood Calibration with
Human Feedback" (2023), equation 1 (without its regularisation term). TRL: loss_type="hinge".

    margin = (policy_chosen - policy_rejected) - (reference_chosen - reference_rejected)
    loss   = relu(1 - beta * margin)

Each argument is [B] log-probs summed over a response's tokens; returns per-pair losses [B].
"""

import torch


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    margin = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return torch.relu(1 - beta * margin)
