"""Learning-rate sweeps on one fixed grid: they extend past an edge that holds the best result and
refine around it, the same way for everyone, wherever the candidate's default sits."""

import math

import numpy as np

from optforge.agent.config import SandboxConfig, SweepConfig
from optforge.agent.evaluation.limits import JobTimeouts
from optforge.agent.evaluation.sweeps import SweepSpec, run_sweeps
from optforge.tasks.baselines import baseline_source
from optforge.tasks.proxy import get_task

# One flat limit: these tests are about the sweep, not about timeouts.
LIMITS = JobTimeouts(SandboxConfig(job_timeout_s=600.0), {})


def test_a_too_small_default_lr_is_followed_upwards(runner):
    sgd = baseline_source("optimizer", "sgd").replace('"lr": 1e-2', '"lr": 1e-5')
    assert '"lr": 1e-5' in sgd
    sweep = SweepConfig(points=3, factor=4.0, max_extensions=2, refine=0)
    grid = sweep.learning_rates(1e-5)
    outcomes, jobs = {}, {}
    for batching in ("vmap_lr", "vmap"):
        counting = CountingRunner(runner)
        spec = SweepSpec(get_task("logreg_cancer"), "optimizer", sgd, "optimizer", 1e-5, [0, 1], batching)
        (outcome,) = run_sweeps([spec], sweep, counting, LIMITS)
        assert len(outcome.lrs) == 5  # 3 grid points + 2 extensions upwards, none downwards
        assert outcome.lrs[:3] == grid and outcome.lrs[-1] > grid[-1]
        assert outcome.best() == 4 and all(s == "ok" for s, _ in outcome.statuses)
        assert outcome.seconds > 0
        outcomes[batching], jobs[batching] = outcome, [len(lrs) for _, lrs in counting.jobs]
    # Batched rates: the grid, then both extensions in one job; one rate a job: 3 + 1 + 1 jobs.
    assert jobs == {"vmap_lr": [3, 2], "vmap": [1, 1, 1, 1, 1]}
    assert outcomes["vmap_lr"].lrs == outcomes["vmap"].lrs


def test_extensions_computed_ahead_are_taken_only_as_the_rule_asks(runner):
    """Where rates batch, an extension job trains every point the rule could still reach on that
    side; a point the sequential rule would not have asked for is not part of the outcome."""
    adamw = baseline_source("optimizer", "adamw")
    sweep = SweepConfig(points=3, factor=4.0, max_extensions=3, refine=0)
    outcomes, jobs = {}, {}
    for batching in ("vmap_lr", "vmap"):
        counting = CountingRunner(runner)
        # AdamW's best on this task is 0.0625, one step past the grid 1/1024..1/64: the rule takes
        # 0.0625, then 0.25 (worse) and stops; the batched chain also trained 1.0.
        spec = SweepSpec(get_task("logreg_cancer"), "optimizer", adamw, "optimizer", 4e-3, [0, 1], batching)
        (outcomes[batching],) = run_sweeps([spec], sweep, counting, LIMITS)
        jobs[batching] = [len(lrs) for _, lrs in counting.jobs]
    batched, sequential = outcomes["vmap_lr"], outcomes["vmap"]
    assert jobs == {"vmap_lr": [3, 3], "vmap": [1, 1, 1, 1, 1]}
    assert batched.lrs == sequential.lrs and len(batched.lrs) == 5
    assert batched.best() == sequential.best() == 3
    for i, curve in sequential.curves.items():
        np.testing.assert_allclose(batched.curves[i], curve, rtol=1e-6)
    assert (batched.members, sequential.members) == (12, 10)  # what each paid for: 2 seeds a rate


def test_an_interior_best_is_not_extended(runner):
    adamw = baseline_source("optimizer", "adamw")
    sweep = SweepConfig(points=5, factor=4.0, max_extensions=3, refine=0)
    spec = SweepSpec(get_task("mlp_digits"), "optimizer", adamw, "optimizer", 1e-3, [0], "vmap_lr")
    (outcome,) = run_sweeps([spec], sweep, runner, LIMITS)
    assert outcome.lrs == sweep.learning_rates(1e-3)
    assert 0 < outcome.best() < 4


# Plain SGD for 40 steps, then each step multiplies the update by lr * 1e4: it shrinks at lr 1e-5
# and grows tenfold per step at lr 1e-3, so the loss turns non-finite mid-run, after a checkpoint.
RUNAWAY = '''HPARAMS = {"lr": 1e-4}


def init(param):
    return {}


def update(grad, param, state, step, hp):
    return -hp["lr"] * grad * (hp["lr"] * 1e4) ** max(step - 40, 0), state
'''


def test_a_run_that_diverges_midway_is_diverged_not_an_invalid_result(runner):
    """A diverged run returns only the checkpoints saved before its divergence; the trusted check
    must take that for what it is (status diverged), however the members are batched."""
    sweep = SweepConfig(points=3, factor=10.0, max_extensions=0, refine=0)
    specs = [SweepSpec(get_task("mlp_digits"), "optimizer", RUNAWAY, "optimizer", 1e-4, [0, 1], batching)
             for batching in ("vmap_lr", "vmap", "loop")]
    for outcome in run_sweeps(specs, sweep, runner, LIMITS):
        assert outcome.lrs == [1e-5, 1e-4, 1e-3]
        assert outcome.statuses[0] == ("ok", None)
        status, error = outcome.statuses[2]
        assert status == "diverged", error
        step = int(error.split("at step ")[1].split()[0])
        assert 30 < step < 300  # mid-run: the first checkpoint after the initial one was saved
        assert set(outcome.curves) <= {0, 1} and 0 in outcome.curves


class CountingRunner:
    """The real runner, counting the jobs and the learning rates each one trains."""

    def __init__(self, runner):
        self.runner, self.jobs = runner, []

    def run_many(self, jobs):
        self.jobs += [(j.payload["batching"], tuple(j.payload["lrs"])) for j in jobs]
        return self.runner.run_many(jobs)


def test_batched_rates_make_the_grid_one_job_with_the_same_outcome(runner):
    adamw = baseline_source("optimizer", "adamw")
    sweep = SweepConfig(points=5, factor=4.0, max_extensions=0, refine=0)
    outcomes = {}
    for batching in ("vmap_lr", "vmap", "loop"):
        counting = CountingRunner(runner)
        spec = SweepSpec(get_task("logreg_cancer"), "optimizer", adamw, "optimizer", 1e-3, [0, 1], batching)
        (outcomes[batching],) = run_sweeps([spec], sweep, counting, LIMITS)
        assert len(counting.jobs) == (1 if batching == "vmap_lr" else 5)
        assert outcomes[batching].batching == batching and outcomes[batching].batching_note is None
        assert outcomes[batching].members == 10
    for batching in ("vmap", "loop"):
        for i, curve in outcomes["vmap_lr"].curves.items():
            np.testing.assert_allclose(outcomes[batching].curves[i], curve, rtol=1e-6)


# Reads one member's gradient as a Python number: vmap cannot run it, one seed at a time can.
ITEM = """import torch
HPARAMS = {"lr": 1e-2}
def init(param):
    return {}
def update(grad, param, state, step, hp):
    scale = 1.0 / max(1.0, float(grad.abs().max().item()))
    return -hp["lr"] * scale * grad, state
"""


def test_a_job_vmap_cannot_run_is_retried_less_batched_and_says_why(runner):
    sweep = SweepConfig(points=3, factor=4.0, max_extensions=0, refine=0)
    counting = CountingRunner(runner)
    spec = SweepSpec(get_task("logreg_cancer"), "optimizer", ITEM, "optimizer", 1e-2, [0, 1], "vmap_lr")
    (outcome,) = run_sweeps([spec], sweep, counting, LIMITS)
    assert all(status == "ok" for status, _ in outcome.statuses), outcome.statuses
    assert outcome.batching == "loop"
    assert outcome.batching_note.startswith("vmap_lr: ") and ".item()" in outcome.batching_note
    # the whole grid in one job, then a job per rate under vmap, then per rate one seed at a time
    assert [b for b, _ in counting.jobs] == ["vmap_lr"] + ["vmap"] * 3 + ["loop"] * 3
    assert outcome.members == 6  # only the runs that produced results count as paid-for work


MOMENTUM_SGD = baseline_source("optimizer", "sgd").replace('"momentum": 0.0', '"momentum": 0.9')


def _with_default_lr(source: str, lr: float) -> str:
    moved = source.replace('"lr": 1e-2', f'"lr": {lr!r}')
    assert moved != source
    return moved


def test_the_grid_is_fixed_the_default_only_places_the_window():
    sweep = SweepConfig()
    assert sweep.snap(1e-3) == 2.0**-10 and sweep.snap(0.007) == 2.0**-8 and sweep.snap(0.014) == 2.0**-6
    for default in (1e-5, 3e-4, 0.007, 0.01, 0.9, 20.0):
        window = sweep.learning_rates(default)
        assert len(window) == 7 and sweep.snap(default) == window[3]
        assert all(math.log2(lr) % 2 == 0 for lr in window)  # powers of 4: every candidate's grid
    assert sweep.refinement_step(1) == 2.0


def test_moving_the_default_lr_by_1_4x_or_2x_does_not_move_the_score(runner):
    """The grid-aliasing bug of the 200-candidate campaign: SGD with momentum 0.9 scored 0.918 to
    1.108 with only its default lr moved. 0.007, 0.0098 and 0.014 place different windows (their
    nearest grid points are 1/256 and 1/64); the sweep must still find the same best rate and
    train it identically."""
    sweep = SweepConfig(points=5)
    specs = [SweepSpec(get_task(task), "optimizer", _with_default_lr(MOMENTUM_SGD, lr), "optimizer", lr, [0, 1],
                       "vmap_lr") for task in ("logreg_cancer", "mlp_digits") for lr in (0.007, 0.0098, 0.014)]
    assert sweep.learning_rates(0.007) != sweep.learning_rates(0.014)
    outcomes = run_sweeps(specs, sweep, runner, LIMITS)
    for per_task in (outcomes[:3], outcomes[3:]):
        bests = [o.lrs[o.best()] for o in per_task]
        assert len(set(bests)) == 1, bests
        assert math.log2(bests[0]) % 1 == 0  # refined to the x2 grid
        finals = [o.curves[o.best()][:, -1] for o in per_task]
        for other in finals[1:]:
            np.testing.assert_allclose(other, finals[0], rtol=1e-6)


def test_refinement_tries_both_neighbours_of_the_best_at_half_the_spacing(runner):
    adamw = baseline_source("optimizer", "adamw")
    sweep = SweepConfig(points=5, refine=2)
    spec = SweepSpec(get_task("logreg_cancer"), "optimizer", adamw, "optimizer", 1e-3, [0], "vmap_lr")
    counting = CountingRunner(runner)
    (outcome,) = run_sweeps([spec], sweep, counting, LIMITS)
    coarse = [lr for lr in outcome.lrs if math.log2(lr) % 2 == 0]
    fine = sorted(set(outcome.lrs) - set(coarse))
    assert len(fine) >= 2  # round 1 (x2) and round 2 (x1.41) each add the untried neighbours
    best = outcome.lrs[outcome.best()]
    assert any(math.isclose(best * 2**0.5, lr) or math.isclose(best / 2**0.5, lr) for lr in outcome.lrs)
