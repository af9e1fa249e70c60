"""The adapters: candidates behave as real torch.optim optimizers, losses and LR schedulers."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.func import vmap

from optforge.tasks.adapters import (
    CandidateLoss,
    CandidateOptimizer,
    CandidateRuntimeError,
    candidate_scheduler,
)
from optforge.tasks.baselines import baseline_names, load_baseline
from optforge.tasks.contracts import Candidate, load_candidate

MakeOptimizer = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def _baseline_opt(name: str, **hparams: float) -> MakeOptimizer:
    return lambda params: CandidateOptimizer(params, load_baseline("optimizer", name), **hparams)


def _model(dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(0)  # same init for every optimizer under comparison
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4)).to(dtype)


def _data(dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(64, 8, generator=gen, dtype=dtype), torch.randint(0, 4, (64,), generator=gen)


def _train(
    make: MakeOptimizer,
    steps: int,
    dtype: torch.dtype = torch.float64,
    scheduler: Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler] | None = None,
) -> list[Tensor]:
    """Train the 2-layer MLP on fixed random data for `steps` full-batch steps; return its params."""
    model, (x, y) = _model(dtype), _data(dtype)
    opt = make(model.parameters())
    sched = scheduler(opt) if scheduler else None
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if sched:
            sched.step()
    return [p.detach().clone() for p in model.parameters()]


def _max_abs_diff(a: list[Tensor], b: list[Tensor]) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


# (candidate, torch.optim twin) pairs whose semantics are identical by construction.
MATCHED = {
    "adamw": (_baseline_opt("adamw", lr=1e-2), lambda p: torch.optim.AdamW(p, lr=1e-2)),
    "adam_l2": (
        _baseline_opt("adam", lr=1e-2, weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1),
    ),
    "sgd": (_baseline_opt("sgd", lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd_momentum": (
        _baseline_opt("sgd", lr=0.1, momentum=0.9, weight_decay=1e-3),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
    ),
    "nesterov": (
        _baseline_opt("nesterov", lr=0.1),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    ),
    "adagrad": (
        _baseline_opt("adagrad", lr=0.1, weight_decay=1e-3),
        lambda p: torch.optim.Adagrad(p, lr=0.1, weight_decay=1e-3),
    ),
    "rmsprop": (_baseline_opt("rmsprop", lr=1e-2), lambda p: torch.optim.RMSprop(p, lr=1e-2)),
    "rmsprop_momentum": (
        _baseline_opt("rmsprop", lr=1e-3, momentum=0.9),
        lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.9),
    ),
}


@pytest.mark.parametrize("name", sorted(MATCHED))
def test_baseline_matches_torch_optim_over_100_steps_in_float64(name: str) -> None:
    ours, theirs = MATCHED[name]
    # float64 isolates the update rule from float32 rounding order (measured: <= 1e-14 apart).
    assert _max_abs_diff(_train(ours, 100), _train(theirs, 100)) < 1e-10


@pytest.mark.parametrize("name", sorted(MATCHED))
def test_baseline_tracks_torch_optim_over_100_steps_in_float32(name: str) -> None:
    ours, theirs = MATCHED[name]
    # `param += delta` rounds differently from torch's in-place addcdiv/lerp, and 100 full-batch
    # steps amplify 1-ulp differences: measured max 1.5e-5 (RMSprop), 8.6e-6 (AdamW), params ~0.3.
    # This bounds the drift in the dtype the tasks use; the float64 test above proves the semantics.
    diff = _max_abs_diff(_train(ours, 100, torch.float32), _train(theirs, 100, torch.float32))
    assert diff < 1e-4


def _reference_lion(params: list[Tensor], grads: list[Tensor], moms: list[Tensor], lr: float,
                    beta1: float, beta2: float, wd: float) -> None:
    """Chen et al. 2023, Program 1, written independently of lion.py with in-place torch ops."""
    for p, g, m in zip(params, grads, moms, strict=True):
        update = (beta1 * m + (1 - beta1) * g).sign()
        p.mul_(1 - lr * wd).add_(update, alpha=-lr)
        m.mul_(beta2).add_(g, alpha=1 - beta2)


def test_lion_matches_its_published_update_rule() -> None:
    lr, beta1, beta2, wd = 1e-3, 0.9, 0.99, 0.1
    ours = _train(_baseline_opt("lion", lr=lr, weight_decay=wd), 100)
    model, (x, y) = _model(), _data()
    params = list(model.parameters())
    moms = [torch.zeros_like(p) for p in params]
    for _ in range(100):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            _reference_lion(params, [p.grad for p in params], moms, lr, beta1, beta2, wd)  # type: ignore[misc]
    assert _max_abs_diff(ours, [p.detach() for p in params]) < 1e-10


# ---- optimizer adapter behaviour --------------------------------------------------------------------


def _sgd(params: Iterable[nn.Parameter] | list[dict], **hparams: float) -> CandidateOptimizer:
    return CandidateOptimizer(params, load_baseline("optimizer", "sgd"), **hparams)


def _unit_grad_step(opt: torch.optim.Optimizer, params: list[nn.Parameter]) -> None:
    """One step where every gradient is exactly 1, so plain SGD moves each param by -lr."""
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()


def test_param_groups_use_their_own_hyperparameters() -> None:
    a, b = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2))
    opt = _sgd([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.1)
    _unit_grad_step(opt, [a, b])
    _unit_grad_step(opt, [a, b])
    torch.testing.assert_close(a.detach(), torch.full((3,), -1.0))
    torch.testing.assert_close(b.detach(), torch.full((2,), -0.2))


def test_unknown_hyperparameter_override_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"betas.*lr, momentum, weight_decay"):
        _sgd([nn.Parameter(torch.zeros(1))], betas=0.9)


def test_a_non_optimizer_candidate_is_refused() -> None:
    with pytest.raises(ValueError, match="expected optimizer"):
        CandidateOptimizer([nn.Parameter(torch.zeros(1))], load_baseline("loss", "focal"))


def test_step_lr_changes_the_lr_the_candidate_sees() -> None:
    p = nn.Parameter(torch.zeros(1))
    opt = _sgd([p], lr=0.4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    moves = []
    for _ in range(3):
        before = p.item()
        _unit_grad_step(opt, [p])
        sched.step()
        moves.append(before - p.item())
    assert moves == pytest.approx([0.4, 0.2, 0.1])


def test_cosine_annealing_drives_the_candidate_like_torch_sgd() -> None:
    def cosine(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20)

    ours = _train(_baseline_opt("sgd", lr=0.5, momentum=0.9), 30, scheduler=cosine)
    theirs = _train(lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9), 30, scheduler=cosine)
    constant = _train(_baseline_opt("sgd", lr=0.5, momentum=0.9), 30)
    assert _max_abs_diff(ours, theirs) < 1e-10
    assert _max_abs_diff(ours, constant) > 1e-3  # the schedule really changed the updates


def test_state_dict_round_trip_through_torch_save_resumes_identically() -> None:
    make = _baseline_opt("adamw", lr=1e-2)
    x, y = _data()

    def run(model: nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

    uninterrupted = _train(make, 20)

    model = _model()
    opt = make(model.parameters())
    run(model, opt, 10)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed_model = _model()
    resumed_model.load_state_dict(saved["model"])
    resumed_opt = make(resumed_model.parameters())
    resumed_opt.load_state_dict(saved["opt"])
    assert resumed_opt.state[next(resumed_model.parameters())]["step"] == 10
    run(resumed_model, resumed_opt, 10)
    assert _max_abs_diff([p.detach() for p in resumed_model.parameters()], uninterrupted) == 0.0


def test_step_with_closure_returns_the_closure_loss() -> None:
    model, (x, y) = _model(), _data()
    opt = _sgd(model.parameters(), lr=0.1)

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    first = opt.step(closure)
    assert isinstance(first, Tensor) and first.dim() == 0
    assert opt.step(closure).item() < first.item()


def test_params_without_grad_are_skipped_and_get_no_state() -> None:
    used, unused = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = CandidateOptimizer([used, unused], load_baseline("optimizer", "adam"), lr=0.1)
    (used**2).sum().backward()
    opt.step()
    assert unused.grad is None and torch.equal(unused.detach(), torch.ones(2))
    assert unused not in opt.state and opt.state[used]["step"] == 1
    assert not torch.equal(used.detach(), torch.ones(2))


def _optimizer_candidate(update_body: str, init_body: str = "return {}") -> Candidate:
    source = (
        "import torch\nHPARAMS = {'lr': 0.1}\n"
        f"def init(param):\n    {init_body}\n"
        f"def update(grad, param, state, step, hp):\n    {update_body}\n"
    )
    return load_candidate(source, "optimizer", "bad")


@pytest.mark.parametrize(
    ("update_body", "init_body", "message"),
    [
        ("return torch.zeros(1), state", "return {}", r"delta has shape \(1,\).*shape \(3,\)"),
        ("return -hp['lr'] * grad", "return {}", "must return a tuple.*got Tensor"),
        ("return -grad, state, 1", "return {}", "tuple of length 3"),
        ("return 0.5, state", "return {}", "delta must be a tensor, got float"),
        ("return -grad, None", "return {}", "new_state must be a dict, got NoneType"),
        ("return -grad / 0 + [1], state", "return {}", "update raised TypeError"),
        ("return -grad, state", "return [param]", "init must return a dict.*got list"),
        ("return -grad, state", "return 1 / 0", "init raised ZeroDivisionError"),
    ],
)
def test_a_broken_candidate_raises_candidate_runtime_error_naming_the_problem(
    update_body: str, init_body: str, message: str
) -> None:
    p = nn.Parameter(torch.zeros(3))
    opt = CandidateOptimizer([p], _optimizer_candidate(update_body, init_body))
    p.grad = torch.ones(3)
    with pytest.raises(CandidateRuntimeError, match=message) as info:
        opt.step()
    assert "\n" not in str(info.value) and "'bad'" in str(info.value)


_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


@settings(max_examples=15, deadline=None)
@given(
    name=st.sampled_from(baseline_names("optimizer")),
    shape=_shapes,
    seeds=st.integers(1, 4),
    value_seed=st.integers(0, 2**31 - 1),
)
def test_updating_a_stacked_seed_tensor_equals_updating_each_seed_alone(
    name: str, shape: tuple[int, ...], seeds: int, value_seed: int
) -> None:
    """Under vmap over the seed dimension, as training runs candidate code (vectorized.py): rules
    that read a tensor's shape or reduce over it (muon, normuon, adafactor) see one seed's tensor."""
    candidate = load_baseline("optimizer", name)
    init, update = candidate.fn("init"), candidate.fn("update")
    hp = candidate.hparams
    if "weight_decay" in hp:
        hp["weight_decay"] = 0.01  # exercise the terms that read param
    gen = torch.Generator().manual_seed(value_seed)
    param = torch.randn(seeds, *shape, generator=gen)
    grads = [torch.randn(seeds, *shape, generator=gen) for _ in range(3)]

    stacked, stacked_state = param.clone(), vmap(init)(param)
    slices = [param[s].clone() for s in range(seeds)]
    slice_states = [init(p) for p in slices]
    for step, grad in enumerate(grads, start=1):
        delta, stacked_state = vmap(update, in_dims=(0, 0, 0, None, None))(
            grad, stacked, stacked_state, step, dict(hp)
        )
        stacked = stacked + delta
        for s in range(seeds):
            delta_s, slice_states[s] = update(grad[s], slices[s], slice_states[s], step, dict(hp))
            slices[s] = slices[s] + delta_s
    torch.testing.assert_close(stacked, torch.stack(slices))


# ---- losses and schedules -----------------------------------------------------------------------


def test_candidate_loss_is_a_module_matching_cross_entropy_with_gradients() -> None:
    loss_fn = CandidateLoss(load_baseline("loss", "cross_entropy"))
    assert isinstance(loss_fn, nn.Module)
    logits = torch.randn(6, 3, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    value = loss_fn(logits, targets)
    torch.testing.assert_close(value, F.cross_entropy(logits, targets))
    value.backward()
    assert logits.grad is not None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("return F.cross_entropy(logits, targets, reduction='none')", r"scalar.*shape \(4,\)"),
        ("return 1.0", "scalar tensor, got float"),
        ("return logits[99]", "loss raised IndexError"),
    ],
)
def test_a_broken_loss_raises_candidate_runtime_error(body: str, message: str) -> None:
    source = f"import torch.nn.functional as F\ndef loss(logits, targets):\n    {body}\n"
    loss_fn = CandidateLoss(load_candidate(source, "loss", "bad"))
    with pytest.raises(CandidateRuntimeError, match=message):
        loss_fn(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))


def test_candidate_scheduler_drives_the_lr_by_the_schedule() -> None:
    p = nn.Parameter(torch.zeros(1))
    opt = _sgd([p], lr=0.1)
    sched = candidate_scheduler(opt, load_baseline("schedule", "linear_decay"), total_steps=10)
    seen, moves = [], []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        before = p.item()
        _unit_grad_step(opt, [p])
        moves.append(before - p.item())
        sched.step()
    expected = [0.1 * (1 - i / 10) for i in range(10)]  # update i uses schedule(i, 10)
    assert seen == pytest.approx(expected)
    assert moves == pytest.approx(expected)  # what the candidate saw as hp["lr"]


def test_candidate_scheduler_warm_up_starts_small() -> None:
    opt = _sgd([nn.Parameter(torch.zeros(1))], lr=1.0)
    candidate_scheduler(opt, load_baseline("schedule", "cosine_warmup"), total_steps=1000)
    assert opt.param_groups[0]["lr"] == pytest.approx(1 / 50)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("return float('nan')", r"schedule\(0, 10\) returned nan; it must be finite and >= 0"),
        ("return -1.0", "must be finite and >= 0"),
        ("return 'fast'", "must return a number, got str"),
        ("return 1 / (step - step)", r"schedule\(0, 10\) raised ZeroDivisionError"),
    ],
)
def test_a_broken_schedule_raises_candidate_runtime_error(body: str, message: str) -> None:
    candidate = load_candidate(f"def schedule(step, total_steps):\n    {body}\n", "schedule", "bad")
    opt = _sgd([nn.Parameter(torch.zeros(1))])
    with pytest.raises(CandidateRuntimeError, match=message):
        candidate_scheduler(opt, candidate, total_steps=10)


def test_candidate_scheduler_rejects_a_non_positive_horizon() -> None:
    opt = _sgd([nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="total_steps"):
        candidate_scheduler(opt, load_baseline("schedule", "constant"), total_steps=0)
