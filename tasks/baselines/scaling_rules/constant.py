"""Constant hyperparameters (the standard parametrisation, SP): every group keeps the learning rate
and weight decay tuned at the base width, however wide the model gets.

The spec measured it far behind the muP-style rules (score -0.094 over widths 64-256): with Adam,
a hidden matrix's update grows with its fan-in, so a fixed learning rate is too large when wide.

    lr(width) = base lr,  weight_decay(width) = base weight_decay   (every group)
"""


def scale(width, base_width, group, base):
    return {"lr": base["lr"], "weight_decay": base["weight_decay"]}
