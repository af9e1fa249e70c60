"""Control: a constant loss. No gradient reaches the policy, so tier 0 must reject it."""

import torch


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    return torch.zeros_like(policy_chosen_logps)
