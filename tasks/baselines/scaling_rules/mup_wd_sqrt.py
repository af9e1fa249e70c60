"""muP-style learning rates (1 / width on hidden matrices and the readout) with weight decay growing
as sqrt(width) there, one reading of "robust layerwise scaling".

Reference: arXiv 2510.15262 states weight decay ~ sqrt(width) for AdamW's matrix parameters when the
learning rate follows 1 / width; other summaries of the same paper say ~ width (mup_wd_linear.py).
The spec measured the two readings close: this one tied with mup.py (score -0.004).

    hidden, output:     lr = base lr / r,  weight_decay = base weight_decay * sqrt(r),  r = width / base_width
    embedding, vector:  the base values
"""

import math


def scale(width, base_width, group, base):
    ratio = width / base_width
    if group in ("hidden", "output"):
        return {"lr": base["lr"] / ratio, "weight_decay": base["weight_decay"] * math.sqrt(ratio)}
    return {"lr": base["lr"], "weight_decay": base["weight_decay"]}
