"""muP-style learning rates (1 / width on hidden matrices and the readout) with weight decay growing
as width there, so lr x weight decay, the rate at which AdamW shrinks those weights, stays constant.

References: Wang & Aitchison, "How to set AdamW's weight decay as you scale model and dataset size"
(2024), which keeps the timescale 1 / (lr x wd) fixed; the "lambda ~ width" reading of arXiv
2510.15262. The spec measured it the worst of the muP variants here (score -0.016), because this
task's data does not grow with width.

    hidden, output:     lr = base lr / r,  weight_decay = base weight_decay * r,  r = width / base_width
    embedding, vector:  the base values
"""


def scale(width, base_width, group, base):
    ratio = width / base_width
    if group in ("hidden", "output"):
        return {"lr": base["lr"] / ratio, "weight_decay": base["weight_decay"] * ratio}
    return {"lr": base["lr"], "weight_decay": base["weight_decay"]}
