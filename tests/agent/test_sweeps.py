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
