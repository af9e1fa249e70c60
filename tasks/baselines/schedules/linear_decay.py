"""Linear decay from the base learning rate to 0 over the run, no warm-up.

Reference: the "linear" schedule common in NLP fine-tuning (e.g. Devlin et al., "BERT", 2019,
without its warm-up); see also Defazio et al., "When, Why and How Much? Adaptive Learning Rate
Scheduling by Refinement" (2023), which finds linear decay a strong default:

    multiplier = max(0, 1 - step / total_steps)

Schedule contract: schedule(step, total_steps) -> float multiplier on the base learning rate.
`step` counts optimizer steps from 0 to total_steps - 1 (torch.optim.lr_scheduler.LambdaLR's
epoch counter when scheduler.step() is called once after each optimizer.step()). LambdaLR also
evaluates step == total_steps after the last update; that value is never used for an update.
"""


def schedule(step, total_steps):
    return max(0.0, 1.0 - step / max(1, total_steps))
