"""Control: supervised fine-tuning on the chosen responses (ignores the rejected ones, the reference
and beta). It gains a little reward at little KL: the spec measured AUC 0.09 against DPO's 0.28."""


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    return -policy_chosen_logps
