"""Job time limits fit the work: short at tier 0, a multiple of the reference's cost for training."""

import pytest

from optforge.agent.config import SandboxConfig
from optforge.agent.evaluation.limits import MODE_COST, UNMEASURED_TIMEOUT_S, JobTimeouts
from optforge.agent.evaluation.sweeps import SweepOutcome
from optforge.tasks.proxy import get_task

TASK = get_task("mlp_digits")
# The reference trained 56 members (7 rates x 8 seeds) in 2.8 s of sandbox time: 50 ms a member.
REFERENCE = {TASK.name: SweepOutcome([1e-3], {}, [("ok", None)], "cross_entropy", seconds=2.8, members=56)}


def test_tier0_gets_its_own_short_limit():
    assert JobTimeouts(SandboxConfig(), {}).tier0().wall_seconds == 10.0
    assert JobTimeouts(SandboxConfig(tier0_timeout_s=3.0), {}).tier0().wall_seconds == 3.0


def test_a_training_job_gets_a_multiple_of_what_the_reference_paid_for_the_same_members():
    timeouts = JobTimeouts(SandboxConfig(timeout_multiple=10.0, min_job_timeout_s=1.0), REFERENCE)
    assert timeouts.train(TASK, 56, "vmap_lr").wall_seconds == pytest.approx(28.0)
    assert timeouts.train(TASK, 8, "vmap").wall_seconds == pytest.approx(0.05 * 8 * MODE_COST["vmap"] * 10)
    assert timeouts.train(TASK, 8, "loop").wall_seconds == pytest.approx(0.05 * 8 * MODE_COST["loop"] * 10)
    assert MODE_COST["vmap_lr"] < MODE_COST["vmap"] < MODE_COST["loop"]


def test_the_floor_and_the_users_own_limit_win():
    assert JobTimeouts(SandboxConfig(), REFERENCE).train(TASK, 1, "vmap_lr").wall_seconds == 30.0
    fixed = JobTimeouts(SandboxConfig(job_timeout_s=600.0), REFERENCE)
    assert fixed.train(TASK, 56, "loop").wall_seconds == fixed.tier0().wall_seconds == 600.0


def test_without_a_measured_reference_the_limit_is_the_old_flat_one():
    assert JobTimeouts(SandboxConfig(), {}).train(TASK, 56, "vmap_lr").wall_seconds == UNMEASURED_TIMEOUT_S


def test_memory_limit_is_passed_through():
    assert JobTimeouts(SandboxConfig(memory_mb=512), REFERENCE).train(TASK, 56, "vmap_lr").memory_mb == 512
