"""Tier 0: conformance in well under a second, cheapest check first, plus a behaviour fingerprint.

The fingerprint hashes a candidate's outputs on fixed inputs, rounded to 4 significant digits, so two
candidates that compute the same thing (up to float reassociation) are recognised as one (the Lion
program search deduplicated its 10^5 candidates the same way).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils._pytree import tree_leaves

from .adapters import CandidateLoss, CandidateOptimizer, candidate_scheduler
from .baselines import load_baseline
from .contracts import Candidate
from .vectorized import MemberOptimizer, fallback_note, member_losses, member_rates

SHAPES = [(7,), (3, 5), (2, 3, 4)]
PROBE_STEPS = 3
SEED_STACK = 3  # members stacked for the batching checks
# The batched-learning-rate check runs the candidate at its default rate and at this multiple of it.
LR_PROBE_FACTOR = 4.0


@dataclass
class Tier0Report:
    passed: bool = True
    batching: str = "loop"  # how training may batch its members (vectorized.py): decided here
    batching_note: str | None = None  # why not a more batched mode: the first error line
    fingerprint: str = ""
    state_tensors: int = 0  # tensors `init` returns per parameter: an optimizer's memory descriptor
    checks: list[dict] = field(default_factory=list)
    error: str | None = None  # first failing check, one line

    def record(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append({"name": name, "ok": ok, "detail": detail})
        if not ok and self.passed:
            self.passed, self.error = False, f"{name}: {detail}"
        return ok


def run_tier0(candidate: Candidate) -> Tier0Report:
    """All tier-0 checks for the candidate's kind; stops at the first failure."""
    report = Tier0Report()
    checks = {"optimizer": _optimizer_checks, "loss": _loss_checks, "schedule": _schedule_checks}
    try:
        checks[candidate.kind](candidate, report)
    except Exception as exc:  # a candidate's exception is a failed check, not our crash
        report.record("runs", False, f"{type(exc).__name__}: {exc}")
    return report


def _fixed(shape: tuple[int, ...], salt: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1000 + salt)
    return torch.randn(shape, generator=gen)


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
        grads = [_fixed(shape, 10 * i + k) for k in range(PROBE_STEPS)]
        runs.append(
            (
                _fixed(shape, 10 * i + 9),
                grads,
                _probe_update(candidate, _fixed(shape, 10 * i + 9), grads),
            )
        )
    deltas = [d for _, _, ds in runs for d in ds]
    if not report.record(
        "finite", all(torch.isfinite(d).all() for d in deltas), "update returned NaN or inf"
    ):
        return
    again = [d for p, g, _ in runs for d in _probe_update(candidate, p, g)]
    if not report.record(
        "deterministic", _same(deltas, again), "two identical calls gave different deltas"
    ):
        return
    _record_batching(report, *_optimizer_batching(candidate, runs))
    report.fingerprint = _hash(deltas)
    state = candidate.fn("init")(runs[0][0].clone())
    values = state.values() if isinstance(state, dict) else ()
    report.state_tensors = sum(isinstance(v, torch.Tensor) for v in values)
    for name, objective, start in (
        ("rosenbrock", _rosenbrock, [-1.0, 1.5]),
        ("quadratic", _quadratic, [1.0] * 10),
    ):
        before, after = _minimize(candidate, objective, start)
        ok = math.isfinite(after) and after < before
        if not report.record(
            f"improves_{name}", ok, f"{name} went from {before:.4g} to {after:.4g}"
        ):
            return


def _record_batching(report: Tier0Report, batching: str, note: str | None) -> None:
    report.batching, report.batching_note = batching, note
    report.record("batching", True, batching if note is None else f"{batching} ({note})")


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
            if not _same([t[m] for t in trajectory], positions, tol=1e-5):
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


_QUAD_DIAG = torch.logspace(0, 3, 10)  # condition number 1e3


def _quadratic(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (_QUAD_DIAG * x * x).sum()


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


def _loss_checks(candidate: Candidate, report: Tier0Report) -> None:
    fn = candidate.fn("loss")
    outputs = []
    for n_classes in (2, 5):
        logits = _fixed((8, n_classes), n_classes).requires_grad_(True)
        targets = torch.arange(8) % n_classes
        value = fn(logits, targets)
        if not report.record(
            "scalar",
            isinstance(value, torch.Tensor) and value.dim() == 0,
            "loss must return a scalar tensor",
        ):
            return
        (grad,) = torch.autograd.grad(value, logits)
        ok = (
            bool(torch.isfinite(value))
            and bool(torch.isfinite(grad).all())
            and bool(grad.abs().sum() > 0)
        )
        if not report.record(
            "finite_gradient", ok, "loss or its gradient is not finite, or the gradient is zero"
        ):
            return
        outputs += [value.detach().reshape(1), grad]
    _record_batching(report, *_loss_batching(candidate))
    report.fingerprint = _hash(outputs)
    before, after = _train_linear_classifier(candidate)
    report.record(
        "improves_classifier",
        after < before,
        f"training error went from {before:.3f} to {after:.3f}",
    )


def _loss_batching(candidate: Candidate) -> tuple[str, str | None]:
    """Vmapped over stacked members, does the loss give each member's loss on its own?"""
    loss = CandidateLoss(candidate)
    logits = torch.stack([_fixed((8, 5), 50 + s) for s in range(SEED_STACK)])
    targets = torch.stack([torch.randperm(8, generator=torch.Generator().manual_seed(s)) % 5
                           for s in range(SEED_STACK)])
    try:
        batched = member_losses(loss, logits, targets, vectorized=True)
    except Exception as exc:
        return "loop", fallback_note("vmap", exc)
    alone = [loss(lg, t) for lg, t in zip(logits, targets, strict=True)]
    if not _same(list(batched), alone, tol=1e-5):
        return "loop", "vmap: vmapped losses differ from one member at a time"
    return "vmap_lr", None


def _train_linear_classifier(candidate: Candidate) -> tuple[float, float]:
    """Error of a linear classifier on a fixed 3-class problem before and after 60 AdamW steps."""
    gen = torch.Generator().manual_seed(7)
    centers = torch.randn(3, 5, generator=gen) * 2
    y = torch.arange(120) % 3
    x = centers[y] + torch.randn(120, 5, generator=gen)
    w = torch.zeros(5, 3, requires_grad=True)
    opt = CandidateOptimizer([w], load_baseline("optimizer", "adamw"), lr=0.05)
    before = float(((x @ w.detach()).argmax(1) != y).float().mean())
    for _ in range(60):
        opt.zero_grad()
        candidate.fn("loss")(x @ w, y).backward()
        opt.step()
    return before, float(((x @ w.detach()).argmax(1) != y).float().mean())


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
    _record_batching(report, "vmap_lr", None)  # it scales AdamW's rate and never sees a tensor
    report.fingerprint = _hash([torch.tensor(values)])
    opt_candidate = load_baseline("optimizer", "adamw")
    x = torch.ones(10, requires_grad=True)
    opt = CandidateOptimizer([x], opt_candidate, lr=0.05)
    sched = candidate_scheduler(opt, candidate, 100)
    before = float(_quadratic(x.detach()))
    for _ in range(100):
        opt.zero_grad()
        _quadratic(x).backward()
        opt.step()
        sched.step()
    after = float(_quadratic(x.detach()))
    report.record(
        "improves_quadratic", after < before, f"quadratic went from {before:.4g} to {after:.4g}"
    )


def _same(a: list[torch.Tensor], b: list[torch.Tensor], tol: float = 0.0) -> bool:
    return len(a) == len(b) and all(
        torch.allclose(x, y, rtol=tol, atol=tol, equal_nan=True) for x, y in zip(a, b, strict=True)
    )


def _hash(tensors: list[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(str(tuple(t.shape)).encode())
        digest.update(" ".join(f"{v:.4g}" for v in t.double().flatten().tolist()).encode())
    return digest.hexdigest()[:16]
