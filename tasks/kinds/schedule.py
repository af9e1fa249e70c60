"""The schedule kind: a learning-rate multiplier.

    def schedule(step, total_steps): ...     # -> float multiplier on the base learning rate

It scales the reference optimizer's (AdamW's) learning rate, swept over the reference's window, and
is scored by the task's own held-out loss.
"""

from __future__ import annotations

import math

import torch

from ..adapters import CandidateOptimizer, candidate_scheduler
from ..baselines import load_baseline
from ..contracts import Candidate
from ..tier0 import Tier0Report, digest, quadratic, record_batching
from ..training import TrainSpec
from .optimizer import heldout_metric
from .spec import ExportSpec, KindSpec, SweepPlan


def train_spec(candidate: Candidate, lrs: tuple[float, ...]) -> TrainSpec:
    """AdamW trains the task, its learning rate scaled by the candidate schedule."""
    return TrainSpec(optimizer=load_baseline("optimizer", "adamw"), lrs=lrs, schedule=candidate)


def _schedule_checks(candidate: Candidate, report: Tier0Report) -> None:
    fn = candidate.fn("schedule")
    values = []
    for total in (10, 100, 1000):
        values += [float(fn(step, total)) for step in range(0, total, max(1, total // 50))]
    ok = all(math.isfinite(v) and v >= 0 for v in values)
    if not report.record("finite_nonnegative", ok, "schedule must return finite multipliers >= 0"):
        return
    report.record(
        "not_all_zero",
        any(v > 0 for v in values),
        "schedule is zero everywhere: nothing would train",
    )
    record_batching(report, "vmap_lr", None)  # it scales AdamW's rate and never sees a tensor
    report.fingerprint = digest([torch.tensor(values)])
    opt_candidate = load_baseline("optimizer", "adamw")
    x = torch.ones(10, requires_grad=True)
    opt = CandidateOptimizer([x], opt_candidate, lr=0.05)
    sched = candidate_scheduler(opt, candidate, 100)
    before = float(quadratic(x.detach()))
    for _ in range(100):
        opt.zero_grad()
        quadratic(x).backward()
        opt.step()
        sched.step()
    after = float(quadratic(x.detach()))
    report.record(
        "improvesquadratic", after < before, f"quadratic went from {before:.4g} to {after:.4g}"
    )


PUBLIC_CODE = '''def discovered_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> LambdaLR:
    """A LambdaLR scaling each group's lr by the candidate's schedule(step, total_steps).

    Call scheduler.step() once after each optimizer.step(); update i uses schedule(i, total_steps).
    """
    return candidate_scheduler(optimizer, CANDIDATE, total_steps)


__all__ = ["CANDIDATE", "PROVENANCE", "discovered_schedule"]'''

SPEC = KindSpec(
    name="schedule",
    summary="a learning-rate schedule: schedule(step, total_steps) -> multiplier",
    main_function="schedule",
    baselines="schedules",
    tier0=_schedule_checks,
    train_spec=train_spec,
    runs_on=lambda task: True,
    metric=heldout_metric,
    reference=("optimizer", "adamw"),
    sweep=SweepPlan(centre="reference"),
    export=ExportSpec(
        public_name="discovered_schedule",
        roots=("load_candidate", "candidate_scheduler"),
        public_code=PUBLIC_CODE,
        usage=(
            "from {module} import discovered_schedule",
            "scheduler = discovered_schedule(optimizer, total_steps=1000)  # a LambdaLR",
            "# call scheduler.step() once after each optimizer.step()",
            '# or: optforge.load_schedule("{file}", optimizer, total_steps=1000)',
        ),
        api_loader="load_schedule",
    ),
)
