"""Linear warm-up over the first 5% of steps, then cosine decay to 0.

Reference: Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour" (2017) for
the linear warm-up; Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts"
(ICLR 2017) for the cosine decay (a single cycle, no restarts):

    w = max(1, floor(0.05 * total_steps))
    step <  w:  (step + 1) / w                               (first step is already nonzero)
    step >= w:  0.5 * (1 + cos(pi * (step - w) / (total_steps - w)))

Schedule contract: schedule(step, total_steps) -> float multiplier on the base learning rate.
`step` counts optimizer steps from 0 to total_steps - 1 (torch.optim.lr_scheduler.LambdaLR's
epoch counter when scheduler.step() is called once after each optimizer.step()). LambdaLR also
evaluates step == total_steps after the last update; that value is never used for an update.
"""

import math

WARMUP_FRACTION = 0.05


def schedule(step, total_steps):
    warmup = max(1, int(WARMUP_FRACTION * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))
