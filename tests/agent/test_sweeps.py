"""Learning-rate sweeps extend past an edge that holds the best result, the same way for everyone."""

from optforge.agent.config import SweepConfig
from optforge.agent.sweeps import SweepSpec, run_sweeps
from optforge.sandbox import Limits
from optforge.tasks.baselines import baseline_source
from optforge.tasks.proxy import get_task


def test_a_too_small_default_lr_is_followed_upwards(runner):
    sgd = baseline_source("optimizer", "sgd").replace('"lr": 1e-2', '"lr": 1e-5')
    assert '"lr": 1e-5' in sgd
    sweep = SweepConfig(points=3, factor=4.0, max_extensions=2)
    spec = SweepSpec(get_task("logreg_cancer"), "optimizer", sgd, "optimizer", 1e-5, [0, 1], True)
    (outcome,) = run_sweeps([spec], sweep, runner, Limits())
    grid = sweep.learning_rates(1e-5)
    assert len(outcome.lrs) == 5  # 3 grid points + 2 extensions upwards, none downwards
    assert outcome.lrs[:3] == grid and outcome.lrs[-1] > grid[-1]
    assert outcome.best() == 4 and all(s == "ok" for s, _ in outcome.statuses)
    assert outcome.seconds > 0


def test_an_interior_best_is_not_extended(runner):
    adamw = baseline_source("optimizer", "adamw")
    sweep = SweepConfig(points=5, factor=4.0, max_extensions=3)
    spec = SweepSpec(get_task("mlp_digits"), "optimizer", adamw, "optimizer", 1e-3, [0], True)
    (outcome,) = run_sweeps([spec], sweep, runner, Limits())
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
    must take that for what it is (status diverged), batched or seed by seed."""
    sweep = SweepConfig(points=3, factor=10.0, max_extensions=0)
    specs = [SweepSpec(get_task("mlp_digits"), "optimizer", RUNAWAY, "optimizer", 1e-4, [0, 1], batched)
             for batched in (True, False)]
    for outcome in run_sweeps(specs, sweep, runner, Limits()):
        assert outcome.lrs == [1e-5, 1e-4, 1e-3]
        assert outcome.statuses[0] == ("ok", None)
        status, error = outcome.statuses[2]
        assert status == "diverged", error
        step = int(error.split("at step ")[1].split()[0])
        assert 30 < step < 300  # mid-run: the first checkpoint after the initial one was saved
        assert set(outcome.curves) <= {0, 1} and 0 in outcome.curves
