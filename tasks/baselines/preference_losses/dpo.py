"""DPO: direct preference optimisation, the sigmoid loss (the reference every candidate is scored against).

Reference: Rafailov, Sharma, Mitchell, Ermon, Manning & Finn, "Direct Preference Optimization: Your
Language Model is Secretly a Reward Model" (NeurIPS 2023), equation 7. TRL: loss_type="sigmoid".

    margin = (policy_chosen - policy_rejected) - (reference_chosen - reference_rejected)
    loss   = -log sigmoid(beta * margin)

Each argument is [B] log-probs summed over a response's tokens; returns per-pair losses [B].
"""

import torch.nn.functional as F


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    margin = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return -F.logsigmoid(beta * margin)
