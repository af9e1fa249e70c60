"""Control: DPO with its sign flipped. It trains the policy towards the rejected responses, so it
must score zero (its hull never rises above the reference's reward)."""

import torch.nn.functional as F


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    margin = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(-beta * margin)
