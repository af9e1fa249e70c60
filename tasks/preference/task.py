"""The preference task of each tier: which seeds, which betas, which evaluation prompts.

Tier 1 (the screen) trains one seed per beta and evaluates on prompts from two held-out plays; tier 2
(finalists) trains three other seeds and evaluates on two other held-out plays, so a campaign's
selection on tier 1 cannot fit tier 2's prompts or its sampling noise. Seeds are paired: seed s has
the same batch order and evaluation stream for every candidate and for the DPO reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from .frontier import KL_CAP
from .prepare import PREPARE_VERSION, PrepareConfig
from .train import TrainRecipe

# The spec measured this grid: DPO's runs span KL 1.6-14 nats, most of [0, KL_CAP]. Adam ignores a
# constant factor on a loss, so beta acts only through the loss's shape in beta * margin.
BETAS = (0.1, 0.3, 1.0, 3.0)
TASK_VERSION = "1"


@dataclass(frozen=True)
class PreferenceTask:
    name: str
    tier: int
    description: str
    seeds: tuple[int, ...]
    betas: tuple[float, ...] = BETAS
    recipe: TrainRecipe = TrainRecipe()
    prepare: PrepareConfig = PrepareConfig()
    kl_cap: float = KL_CAP

    @property
    def steps(self) -> int:
        return self.recipe.steps

    @property
    def batch_size(self) -> int:
        return self.recipe.batch_pairs

    def full_version(self) -> str:
        return f"{self.name}:{TASK_VERSION}:{PREPARE_VERSION}:{self.prepare.key()}:{self.recipe}:{self.betas}:{self.kl_cap}"


PREFERENCE_TASKS = {
    1: PreferenceTask(
        "shakespeare_vader", 1,
        "align a 110k-weight char-GPT (Shakespeare) to VADER sentiment; area under reward-vs-KL, "
        "prompts from Julius Caesar and Othello, 1 seed",
        seeds=(0,),
    ),
    2: PreferenceTask(
        "shakespeare_vader_heldout", 2,
        "the same alignment, prompts from The Tempest and Twelfth Night, 3 paired seeds",
        seeds=(1, 2, 3),
    ),
}


def preference_task(tier: int) -> PreferenceTask:
    if tier not in PREFERENCE_TASKS:
        raise ValueError(f"tier {tier} has no preference task: use 1 (screen) or 2 (held-out)")
    return PREFERENCE_TASKS[tier]
