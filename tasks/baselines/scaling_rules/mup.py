"""muP-style learning rates for Adam: the hidden matrices' and the readout's learning rate falls as
1 / width; embeddings and vectors keep theirs; weight decay stays constant.

Reference: Yang, Hu, Babuschkin, Sidor, Liu, Farhi, Ryder, Pachocki, Chen & Gao, "Tensor Programs V:
Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer" (2022), Table 3 (Adam, with the
initialisation held fixed as here: only the learning rates follow muP). The spec's best rule
(score -0.003 over widths 64-256).

    hidden, output:     lr = base lr * base_width / width,  weight_decay = base weight_decay
    embedding, vector:  lr = base lr,                      weight_decay = base weight_decay
"""


def scale(width, base_width, group, base):
    ratio = width / base_width
    if group in ("hidden", "output"):
        return {"lr": base["lr"] / ratio, "weight_decay": base["weight_decay"]}
    return {"lr": base["lr"], "weight_decay": base["weight_decay"]}
