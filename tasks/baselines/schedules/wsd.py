"""Warm-up / stable / decay (WSD, "trapezoidal"): 5% linear warm-up, constant, then linear decay
to 0 over the last 20% of steps.

Reference: Hu et al., "MiniCPM: Unveiling the Potential of Small Language Models with Scalable
Training Strategies" (2024); Hagele et al., "Scaling Laws and Compute-Optimal Training Beyond
Fixed Training Durations" (NeurIPS 2024):

    w = max(1, floor(0.05 * total_steps)),  d = max(1, floor(0.2 * total_steps))
    warm-up:  (step + 1) / w                                   for step < w
    decay:    (total_steps - step) / d                         for step >= total_steps - d
    stable:   1 otherwise   (for very short runs the smaller of the two ramps wins)

Schedule contract: schedule(step, total_steps) -> float multiplier on the base learning rate.
`step` counts optimizer steps from 0 to total_steps - 1 (torch.optim.lr_scheduler.LambdaLR's
epoch counter when scheduler.step() is called once after each optimizer.step()). LambdaLR also
evaluates step == total_steps after the last update; that value is never used for an update.
"""

WARMUP_FRACTION = 0.05
DECAY_FRACTION = 0.2


def schedule(step, total_steps):
    warmup = max(1, int(WARMUP_FRACTION * total_steps))
    decay = max(1, int(DECAY_FRACTION * total_steps))
    warm = (step + 1) / warmup
    cool = (total_steps - step) / decay
    return max(0.0, min(1.0, warm, cool))
