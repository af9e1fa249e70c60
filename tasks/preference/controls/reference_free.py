"""Control: DPO without the reference model. It drifts to KL ~27 nats at every beta, far past the
score's KL cap, so it must score well below DPO (the spec measured AUC 0.04 against 0.28)."""

import torch.nn.functional as F


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    return -F.logsigmoid(beta * (policy_chosen_logps - policy_rejected_logps))
