"""The shipped reference of the scaling task (tasks/scaling/data/reference.json): what the task
scores against is complete and consistent, and one of its cells, re-run here with the same trusted
code, gives the shipped loss (the sweep that made it took an hour; CI re-runs a 10-second cell)."""

from __future__ import annotations

import pytest
import torch

from optforge.tasks.scaling import corpus, evaluation, reference
from optforge.tasks.scaling.sweep import BASE_WIDTH, RunSpec, hyperparameters
from optforge.tasks.scaling.task import SCALING_TASKS
from optforge.tasks.scaling.train import Recipe, train


def test_the_reference_covers_every_scored_width_and_seed_with_three_seed_cells():
    ref = reference.load()
    assert ref.base_width == BASE_WIDTH and ref.data["corpus_sha256"] == corpus.STDLIB_SHA256
    assert ref.data["recipe"] == {k: getattr(Recipe(), k) for k in ref.data["recipe"]}
    for task in SCALING_TASKS.values():
        for width in task.widths:
            at = ref.at(width)
            assert set(task.seeds) <= set(at.losses) and at.seconds_per_run > 0
            # the best cell is the best 3-seed mean among the cells that have three seeds
            cells = [c for c in ref.data["widths"][str(width)]["cells"] if len(c["losses"]) == 3]
            best = min(cells, key=lambda c: sum(c["losses"].values()))
            assert (best["lr"], best["weight_decay"]) == (at.lr, at.weight_decay)
    with pytest.raises(reference.ReferenceMissing, match="has no width 48"):
        ref.at(48)


@pytest.mark.slow
def test_one_shipped_cell_reproduces_to_the_last_digits():
    ref = reference.load()
    width, at = 64, ref.at(64)
    spec = RunSpec(width, hyperparameters(ref.base_lr, ref.base_weight_decay, at.lr, at.weight_decay), 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the sweep's workers ran
    try:
        run = train(width, {g: (lr, wd) for g, lr, wd in spec.hyperparameters}, 0, corpus.train_ids())
    finally:
        torch.set_num_threads(threads)
    assert run.diverged_at is None
    assert evaluation.weights_loss(width, run.weights) == pytest.approx(at.losses[0], abs=1e-5)
