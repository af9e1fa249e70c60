"""The scaling task of each tier: which widths, which seeds.

Tier 1 (the screen) trains widths 64, 128 and 256 at one seed; tier 2 (finalists) trains width 512,
a width no tier-1 score depends on, at three paired seeds, against its own reference: a rule that
fits the screen's widths without following a law of width shows it there. Seeds are paired: seed s
fixes the initialisation and the windows for every rule and for the reference.

Score (the spec's, as a ratio): gap(width) = mean over seeds of (loss - L*(width, seed)), in nats;
each width's gap is capped at 0.5 (a run that diverged counts as the cap); score =
exp(-mean capped gap), the tuned optimum's perplexity over the rule's, so 1.0 is as good as tuning
every width's hidden and readout learning rate and weight decay, above 1 is better than that grid's
best (a rule may leave the reference's family), and ranking is the mean gap's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import corpus, evaluation
from .reference import Reference
from .train import Recipe

GAP_CAP = 0.5
TASK_VERSION = "1"


@dataclass(frozen=True)
class ScalingTask:
    name: str
    tier: int
    description: str
    widths: tuple[int, ...]
    seeds: tuple[int, ...]
    recipe: Recipe = Recipe()
    base_width: int = 32

    def width_task(self, width: int) -> str:
        """The name of one width's result (a TaskResult per width)."""
        return f"{self.name}_w{width}"

    def full_version(self, reference: Reference) -> str:
        return (f"{self.name}:{TASK_VERSION}:{corpus.STDLIB_SHA256[:12]}:{dataclasses.astuple(self.recipe)}:"
                f"{self.widths}:{self.seeds}:{evaluation.EVALUATION_WINDOWS}:{evaluation.EVALUATION_SEED}:"
                f"{reference.digest}")


SCALING_TASKS = {
    1: ScalingTask("stdlib_resmlp", 1,
                   "a residual-MLP char LM on Python's stdlib, widths 64/128/256 from base 32; "
                   "held-out loss against each width's tuned optimum, 1 seed",
                   widths=(64, 128, 256), seeds=(0,)),
    2: ScalingTask("stdlib_resmlp_heldout", 2,
                   "the same model at width 512, which tier 1 never scores, against its own tuned optimum, "
                   "3 paired seeds",
                   widths=(512,), seeds=(0, 1, 2)),
}


def scaling_task(tier: int) -> ScalingTask:
    if tier not in SCALING_TASKS:
        raise ValueError(f"tier {tier} has no scaling task: use 1 (screen) or 2 (held-out width)")
    return SCALING_TASKS[tier]
