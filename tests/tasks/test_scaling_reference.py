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


class SyntheticRuns:
    """Runs whose loss is a bowl in (log2 hidden lr, log2 lr x wd) around a chosen optimum, plus a
    per-seed offset: the sweep's search and bookkeeping without training anything."""

    def __init__(self, lr_star: float, lrwd_star: float):
        self.lr_star, self.lrwd_star, self.calls = lr_star, lrwd_star, []

    def get(self, specs):
        import math

        specs = list(specs)
        self.calls.append(specs)
        out = {}
        for s in specs:
            _, lr, wd = s.hyperparameters[1]
            bowl = (math.log2(lr / self.lr_star)) ** 2 + (math.log2(lr * wd / self.lrwd_star)) ** 2
            out[s] = (1.5 + 0.01 * bowl + 0.001 * s.seed, 1.0)
        return out


def test_the_width_sweep_extends_past_an_edge_and_picks_the_best_three_seed_cell():
    from optforge.tasks.scaling.sweep import sweep_width

    base_lr, base_wd, width = 0.01, 0.2, 128
    # optimum 2x above muP's lr (k = 1, the grid's edge... and one beyond: k = 2) and lr x wd at 2^-4
    runs = SyntheticRuns(base_lr * 32 / width * 4, base_lr * base_wd * 2 ** -4)
    result = sweep_width(runs, width, base_lr, base_wd)  # type: ignore[arg-type]
    assert (result["best"]["k"], result["best"]["j"]) == (2, -4)
    assert result["best"]["losses"] == {"0": pytest.approx(1.5), "1": pytest.approx(1.501), "2": pytest.approx(1.502)}
    assert not result["on_edge"] and len([c for c in result["cells"] if len(c["losses"]) == 3]) == 4
    assert result["best"]["lr"] == pytest.approx(base_lr * 32 / width * 4)


def test_the_base_sweep_finds_one_lr_and_weight_decay_for_all_groups():
    from optforge.tasks.scaling.sweep import sweep_base

    runs = SyntheticRuns(0.0113, 0.0113 * 0.2)  # the spec's base optimum, interior to the grid
    result = sweep_base(runs)  # type: ignore[arg-type]
    assert result["lr"] == pytest.approx(0.008 * 2 ** 0.5) and result["weight_decay"] == pytest.approx(0.2)
    groups = {g: (lr, wd) for g, lr, wd in runs.calls[0][0].hyperparameters}
    assert groups["embedding"] == groups["hidden"] == groups["output"] and groups["vector"][1] == 0.0
