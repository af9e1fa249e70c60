"""Constant learning rate: the multiplier is 1 at every step.

Reference: the no-schedule baseline every schedule is compared against; e.g. Kingma & Ba,
"Adam: A Method for Stochastic Optimization" (ICLR 2015) use a constant step size alpha.

Schedule contract: schedule(step, total_steps) -> float multiplier on the base learning rate.
`step` counts optimizer steps from 0 to total_steps - 1 (torch.optim.lr_scheduler.LambdaLR's
epoch counter when scheduler.step() is called once after each optimizer.step()). LambdaLR also
evaluates step == total_steps after the last update; that value is never used for an update.
"""


def schedule(step, total_steps):
    return 1.0
