"""IPO: identity preference optimisation, a squared loss that regresses the margin onto 1 / (2 beta).

Reference: Azar, Rowland, Piot, Guo, Calandriello, Valko & Munos, "A General Theoretical Paradigm to
Understand Learning from Human Preferences" (AISTATS 2024), equation 17. TRL: loss_type="ipo" (TRL
averages log-probs over tokens; here, as in DiscoPOP, they are summed).

    margin = (policy_chosen - policy_rejected) - (reference_chosen - reference_rejected)
    loss   = (margin - 1 / (2 beta))^2

Each argument is [B] log-probs summed over a response's tokens; returns per-pair losses [B].
"""


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    margin = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return (margin - 1 / (2 * beta)) ** 2
