"""The optimizer kind: a per-tensor update rule, optax-shaped.

    HPARAMS = {"lr": 1e-3, ...}
    def init(param): return {...}                         # state for one tensor
    def update(grad, param, state, step, hp):              # step counts from 1
        ...; return delta, new_state                       # the caller applies param += delta

It trains in place of the task's optimizer, its own default `lr` places the sweep's window, and it is
scored against tuned AdamW by the task's own held-out loss.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch.utils._pytree import tree_leaves

from ..adapters import CandidateOptimizer
from ..contracts import Candidate
from ..proxy import ProxyTask
from ..tier0 import SEED_STACK, Tier0Report, digest, fixed, quadratic, record_batching, same
from ..training import TrainSpec
from ..vectorized import MemberOptimizer, fallback_note, member_rates
from .spec import ExportSpec, KindSpec, SweepPlan

SHAPES = [(7,), (3, 5), (2, 3, 4)]
PROBE_STEPS = 3
# The batched-learning-rate check runs the candidate at its default rate and at this multiple of it.
LR_PROBE_FACTOR = 4.0


def train_spec(candidate: Candidate, lrs: tuple[float, ...]) -> TrainSpec:
    """The candidate is the optimizer; the task's own loss, no schedule."""
    return TrainSpec(optimizer=candidate, lrs=lrs)


def heldout_metric(task: ProxyTask) -> str:
    return "mse" if task.objective == "regression" else "cross_entropy"


def _probe_update(
    candidate: Candidate, param: torch.Tensor, grads: list[torch.Tensor], lr: float | None = None,
    final_states: list | None = None,
) -> list[torch.Tensor]:
    """Deltas of PROBE_STEPS updates from a fresh state (the param moves by each delta); the last
    state is appended to `final_states` when given."""
    update, hp = candidate.fn("update"), candidate.hparams
    if lr is not None:
        hp["lr"] = lr
    state, deltas = candidate.fn("init")(param.clone()), []
    for step, grad in enumerate(grads, start=1):
        out = update(grad.clone(), param.clone(), state, step, dict(hp))
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
            raise TypeError("update must return a tuple (delta, new_state_dict)")
        delta, state = out
        if not isinstance(delta, torch.Tensor) or delta.shape != param.shape:
            got = tuple(delta.shape) if isinstance(delta, torch.Tensor) else type(delta).__name__
            raise TypeError(
                f"delta must be a tensor of the param's shape {tuple(param.shape)}, got {got}"
            )
        deltas.append(delta.detach().clone())
        param = param + delta
    if final_states is not None:
        final_states.append(state)
    return deltas


def _optimizer_checks(candidate: Candidate, report: Tier0Report) -> None:
    runs = []
    for i, shape in enumerate(SHAPES):
        grads = [fixed(shape, 10 * i + k) for k in range(PROBE_STEPS)]
        runs.append(
            (
                fixed(shape, 10 * i + 9),
                grads,
                _probe_update(candidate, fixed(shape, 10 * i + 9), grads),
            )
        )
    deltas = [d for _, _, ds in runs for d in ds]
    if not report.record(
        "finite", all(torch.isfinite(d).all() for d in deltas), "update returned NaN or inf"
    ):
        return
    again = [d for p, g, _ in runs for d in _probe_update(candidate, p, g)]
    if not report.record(
        "deterministic", same(deltas, again), "two identical calls gave different deltas"
    ):
        return
    record_batching(report, *_optimizer_batching(candidate, runs))
    report.fingerprint = digest(deltas)
    state = candidate.fn("init")(runs[0][0].clone())
    values = state.values() if isinstance(state, dict) else ()
    report.state_tensors = sum(isinstance(v, torch.Tensor) for v in values)
    for name, objective, start in (
        ("rosenbrock", _rosenbrock, [-1.0, 1.5]),
        ("quadratic", quadratic, [1.0] * 10),
    ):
        before, after = _minimize(candidate, objective, start)
        ok = math.isfinite(after) and after < before
        if not report.record(
            f"improves_{name}", ok, f"{name} went from {before:.4g} to {after:.4g}"
        ):
            return


def _optimizer_batching(candidate: Candidate, runs: list) -> tuple[str, str | None]:
    """The most batched mode whose results equal one member at a time on the probe tensors, and
    why the next more batched one was not taken (its first error line, or how results differed)."""
    try:
        differs = _members_differ(candidate, runs, lrs=None)
    except Exception as exc:
        return "loop", fallback_note("vmap", exc)
    if differs:
        return "loop", f"vmap: vmapped updates {differs} one seed at a time"
    lr = float(candidate.hparams["lr"])
    try:
        differs = _members_differ(candidate, runs, lrs=(lr, lr * LR_PROBE_FACTOR))
    except Exception as exc:
        return "vmap", fallback_note("vmap_lr", exc)
    if differs:
        return "vmap", f"vmap_lr: batched learning rates {differs} separate runs"
    return "vmap_lr", None


def _members_differ(candidate: Candidate, runs: list, lrs: tuple[float, ...] | None) -> str | None:
    """How PROBE_STEPS updates of stacked members (SEED_STACK seeds, at each of `lrs` as per-member
    rates, or at the default rate) differ from each member's updates on its own, or None.

    Dtypes must match too: under vmap a per-member rate is a float64 tensor, and a few ops (clamp
    with the rate as a bound) then compute in float64 where the real optimizer computes in float32:
    close, but not the same run, and chaotic candidates amplify the difference."""
    rates = lrs or (float(candidate.hparams["lr"]),)
    for param, grads, _ in runs:
        seeds = [param * (1 + s) for s in range(SEED_STACK)]
        seed_grads = [[g * (1 - 0.3 * s) for s in range(SEED_STACK)] for g in grads]
        stacked = torch.stack(seeds * len(rates))
        opt = MemberOptimizer([stacked], candidate, member_rates(rates, SEED_STACK), vectorized=True)
        state, trajectory, batched_dtypes = opt._initial_state(stacked), [], set()
        for step, step_grads in enumerate(seed_grads, start=1):
            grad = torch.stack(step_grads * len(rates))
            delta, state = opt._apply(grad, stacked, state, step, opt._hparams(opt.param_groups[0]))
            batched_dtypes |= _dtypes(delta, state)
            stacked = stacked.clone().add_(delta)  # as the optimizer applies it: in the param dtype
            trajectory.append(stacked)
        alone_dtypes: set[torch.dtype] = set()
        for m in range(len(rates) * SEED_STACK):
            rate, s = rates[m // SEED_STACK], m % SEED_STACK
            final: list = []
            alone = _probe_update(candidate, seeds[s], [g[s] for g in seed_grads], rate, final)
            alone_dtypes |= set().union(*(_dtypes(d, final[0]) for d in alone))
            positions = list(itertools.accumulate(alone, initial=seeds[s]))[1:]
            if not same([t[m] for t in trajectory], positions, tol=1e-5):
                return "differ from"
        if batched_dtypes != alone_dtypes:
            names = ", ".join(sorted(str(d).removeprefix("torch.") for d in batched_dtypes - alone_dtypes))
            return f"compute in {names or 'other dtypes'} unlike"
    return None


def _dtypes(delta: torch.Tensor, state: dict) -> set[torch.dtype]:
    leaves = [delta, *tree_leaves(state)]
    return {t.dtype for t in leaves if isinstance(t, torch.Tensor)}


def _rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


# A default learning rate tuned for networks can be far too large for these curvatures (Rosenbrock's
# is ~1e3 at the start): the check passes if any of these multiples of the default improves.
LR_MULTIPLIERS = (1.0, 0.1, 0.01)


def _minimize(candidate: Candidate, objective: Callable, start: list[float], steps: int = 100) -> tuple[float, float]:
    """Objective before and after `steps` updates, at the best of the LR_MULTIPLIERS."""
    before = float(objective(torch.tensor(start)))
    results = []
    for multiplier in LR_MULTIPLIERS:
        x = torch.tensor(start, requires_grad=True)
        opt = CandidateOptimizer([x], candidate, lr=candidate.hparams["lr"] * multiplier)
        for _ in range(steps):
            opt.zero_grad()
            objective(x).backward()
            opt.step()
        after = float(objective(x.detach()))
        results.append(after if math.isfinite(after) else math.inf)
    return before, min(results)


PUBLIC_CODE = '''class DiscoveredOptimizer(CandidateOptimizer):
    """The candidate as a torch.optim.Optimizer: the adapter it was scored through.

    Hyperparameters default to the candidate's HPARAMS; pass any of them by keyword, or per param
    group. LR schedulers work (each step reads group["lr"]); state_dict holds tensors and numbers.
    """

    def __init__(self, params: ParamsT, **hparams: Any) -> None:
        super().__init__(params, CANDIDATE, **hparams)


__all__ = ["CANDIDATE", "PROVENANCE", "DiscoveredOptimizer"]'''

SPEC = KindSpec(
    name="optimizer",
    summary="an optimizer update rule: init(param), update(grad, param, state, step, hp), HPARAMS",
    main_function="update",
    baselines="optimizers",
    tier0=_optimizer_checks,
    train_spec=train_spec,
    runs_on=lambda task: True,
    metric=heldout_metric,
    reference=("optimizer", "adamw"),
    sweep=SweepPlan(centre="candidate"),
    export=ExportSpec(
        public_name="DiscoveredOptimizer",
        roots=("load_candidate", "CandidateOptimizer"),
        public_code=PUBLIC_CODE,
        usage=(
            "from {module} import DiscoveredOptimizer",
            "optimizer = DiscoveredOptimizer(model.parameters(), lr=1e-3)  # any HPARAMS key",
            '# or: optforge.load_optimizer("{file}", model.parameters(), lr=1e-3)',
        ),
        api_loader="load_optimizer",
    ),
)
