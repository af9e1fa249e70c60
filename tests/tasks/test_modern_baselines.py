"""Muon, Adafactor and NorMuon baselines: driven through the adapter (what exported files run), Muon
and Adafactor follow torch.optim.Muon / torch.optim.Adafactor step for step; NorMuon, which has
no torch reference, is checked against its defining properties relative to Muon."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import Tensor, nn
from torch.optim import _muon as torch_muon

from optforge.tasks.adapters import CandidateOptimizer
from optforge.tasks.baselines import load_baseline

# Builds what steps the parameters: a torch.optim.Optimizer, or _Both (two of them).
MakeOptimizer = Callable[[list[nn.Parameter]], "torch.optim.Optimizer | _Both"]

MATRICES: list[tuple[int, ...]] = [
    (6, 4),
    (4, 6),
    (5, 5),
]  # tall (torch transposes it), wide, square
OTHERS: list[tuple[int, ...]] = [
    (7,),
    (),
    (2, 3, 4),
]  # a bias, a scalar, a 3-D kernel: not 2-D, so AdamW in Muon


# Float64 runs differ from torch only by reassociation (addmm vs a * X + B @ X, lerp vs a weighted
# sum): ~1e-14 after 30 steps. Float32 rounding differences grow along a trajectory (Newton-Schulz
# amplifies the smallest singular directions ~3.4x per iteration): ~1e-6 after 15 steps and up to
# 1e-4 after 30 in the plain-momentum Muon run, so float32 runs are compared over 15 steps.
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
STEPS = {torch.float64: 30, torch.float32: 15}


def _params(shapes: list[tuple[int, ...]], dtype: torch.dtype) -> list[nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    return [nn.Parameter(torch.randn(s, generator=gen, dtype=dtype) / 2) for s in shapes]


def _loss(params: list[nn.Parameter]) -> Tensor:
    """A fixed regression through every matrix (as a [out, in] layer) and a tanh fit of the rest,
    so each step's gradient depends on where the previous steps went."""
    gen = torch.Generator().manual_seed(1)
    total = torch.zeros((), dtype=params[0].dtype)
    for p in params:
        if p.ndim == 2:
            x = torch.randn(16, p.shape[1], generator=gen, dtype=p.dtype)
            y = torch.randn(16, p.shape[0], generator=gen, dtype=p.dtype)
            total = total + ((x @ p.mT).tanh() - y).square().mean()
        else:
            target = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            total = total + (3 * p.tanh() - target).square().sum()
    return total


def _trajectory(
    make: MakeOptimizer, shapes: list[tuple[int, ...]], dtype: torch.dtype
) -> list[Tensor]:
    """Every parameter after every step of minimising _loss (STEPS[dtype] steps)."""
    params = _params(shapes, dtype)
    opt = make(params)
    seen = []
    for _ in range(STEPS[dtype]):
        opt.zero_grad()
        _loss(params).backward()
        opt.step()
        seen += [p.detach().clone() for p in params]
    return seen


def _assert_same(ours: list[Tensor], theirs: list[Tensor], tol: float) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def _candidate(name: str, **hparams: float) -> MakeOptimizer:
    return lambda params: CandidateOptimizer(params, load_baseline("optimizer", name), **hparams)


# ---- Muon ----------------------------------------------------------------------------------------


def _newton_schulz_in_the_input_dtype() -> Callable[..., Tensor]:
    """torch's own Newton-Schulz (torch/optim/_muon.py) without its bfloat16 cast, which is the
    one thing the candidate does differently (it computes in the parameter's dtype)."""
    source = inspect.getsource(torch_muon._zeropower_via_newtonschulz)
    assert source.count("grad.bfloat16()") == 1, "torch's Newton-Schulz changed: revisit this twin"
    namespace = dict(vars(torch_muon))
    exec(source.replace("grad.bfloat16()", "grad.clone()"), namespace)
    return namespace["_zeropower_via_newtonschulz"]


@pytest.fixture
def muon_in_the_input_dtype(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(
        torch_muon, "_zeropower_via_newtonschulz", _newton_schulz_in_the_input_dtype()
    )
    yield


def test_muon_defaults_are_torch_muons_with_torchs_documented_learning_rates() -> None:
    candidate = load_baseline("optimizer", "muon")
    hp, torch_defaults = candidate.hparams, inspect.signature(torch.optim.Muon).parameters
    for key in ("momentum", "weight_decay", "eps"):
        assert hp[key] == torch_defaults[key].default, key
    assert bool(hp["nesterov"]) is torch_defaults["nesterov"].default is True
    assert torch_defaults["adjust_lr_fn"].default is None  # "original": the only rule offered
    assert candidate.namespace["NS_COEFFICIENTS"] == (
        torch_muon.DEFAULT_A,
        torch_muon.DEFAULT_B,
        torch_muon.DEFAULT_C,
    )
    assert candidate.namespace["NS_STEPS"] == torch_muon.DEFAULT_NS_STEPS
    # torch.optim.Muon's docstring example: Muon at lr 0.02 with AdamW at 3e-4, weight decay 0.01.
    assert hp["lr"] == 0.02
    assert hp["lr"] * hp["adamw_lr_ratio"] == pytest.approx(3e-4)
    assert hp["adamw_weight_decay"] == 0.01


@pytest.mark.usefixtures("muon_in_the_input_dtype")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    "hparams",
    [
        {"lr": 0.02, "momentum": 0.95, "weight_decay": 0.1, "nesterov": True},
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "nesterov": False},
    ],
    ids=["defaults", "plain_momentum"],
)
def test_muon_follows_torch_muon_on_matrices(hparams: dict, dtype: torch.dtype) -> None:
    ours = _trajectory(
        _candidate("muon", **{**hparams, "nesterov": float(hparams["nesterov"])}), MATRICES, dtype
    )
    theirs = _trajectory(lambda p: torch.optim.Muon(p, **hparams), MATRICES, dtype)
    _assert_same(ours, theirs, TOL[dtype])


def test_muon_steps_match_torch_muon_in_bfloat16_to_its_rounding() -> None:
    """Unpatched torch runs Newton-Schulz in bfloat16 (8 significant bits): from the same weights
    and momentum, its update differs from the candidate's float32 one by ~1-2% (5 iterations of
    bf16 rounding), never more than 5%. The momentum buffers, computed in float32 by both, agree."""
    hp = load_baseline("optimizer", "muon").hparams
    gen = torch.Generator().manual_seed(2)
    for shape in [*MATRICES, (32, 16), (64, 64)]:
        ours_p, theirs_p = _params([shape], torch.float32), _params([shape], torch.float32)
        ours = CandidateOptimizer(ours_p, load_baseline("optimizer", "muon"))
        theirs = torch.optim.Muon(theirs_p, lr=hp["lr"])
        for _ in range(10):
            grad = torch.randn(shape, generator=gen)
            theirs_p[0].data.copy_(ours_p[0].detach())  # the same weights before every step
            before, moves = ours_p[0].detach().clone(), []
            for params, opt in ((ours_p, ours), (theirs_p, theirs)):
                params[0].grad = grad.clone()
                opt.step()
                moves.append(params[0].detach() - before)
            assert (moves[0] - moves[1]).norm() <= 0.05 * moves[1].norm()
            torch.testing.assert_close(
                ours.state[ours_p[0]]["candidate"]["exp_avg"],
                theirs.state[theirs_p[0]]["momentum_buffer"],
            )


@pytest.mark.usefixtures("muon_in_the_input_dtype")
def test_muon_gives_other_tensors_torch_adamw_at_lr_times_adamw_lr_ratio() -> None:
    """torch.optim.Muon's documented recipe: Muon for the matrices, AdamW for everything else."""
    hp, dtype = load_baseline("optimizer", "muon").hparams, torch.float64
    shapes = [*MATRICES, *OTHERS]

    def recipe(params: list[nn.Parameter]) -> _Both:
        muon = torch.optim.Muon([p for p in params if p.ndim == 2], lr=hp["lr"])
        adamw = torch.optim.AdamW(
            [p for p in params if p.ndim != 2],
            lr=hp["lr"] * hp["adamw_lr_ratio"],
            betas=(hp["adamw_beta1"], hp["adamw_beta2"]),
            eps=hp["adamw_eps"],
            weight_decay=hp["adamw_weight_decay"],
        )
        return _Both(muon, adamw)

    _assert_same(
        _trajectory(_candidate("muon"), shapes, dtype),
        _trajectory(recipe, shapes, dtype),
        TOL[dtype],
    )


class _Both:
    """Two torch optimizers stepped together, as torch.optim.Muon's docstring example does."""

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = optimizers

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad()

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()


# ---- Adafactor -----------------------------------------------------------------------------------


def test_adafactor_defaults_are_torch_adafactors() -> None:
    hp, torch_defaults = (
        load_baseline("optimizer", "adafactor").hparams,
        inspect.signature(torch.optim.Adafactor).parameters,
    )
    for key in ("lr", "beta2_decay", "d", "weight_decay"):
        assert hp[key] == torch_defaults[key].default, key
    eps1, eps2 = torch_defaults["eps"].default
    assert eps1 is None and hp["eps1"] == torch.finfo(torch.float32).eps  # None: the dtype's eps
    assert hp["eps2"] == eps2


ADAFACTOR_HPARAMS = [
    {},
    # lr 0.5 caps rho_t = min(lr, 1/sqrt(t)) at 1/sqrt(t) from step 5 on; decay scales with lr.
    {"lr": 0.5, "weight_decay": 0.1},
    {"lr": 0.05, "beta2_decay": -0.5, "eps2": 0.5, "d": 2.0},
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("hparams", ADAFACTOR_HPARAMS, ids=["defaults", "large_lr_decay", "other"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (5, 1), ()], ids=str)
def test_adafactor_follows_torch_adafactor(
    shape: tuple[int, ...], hparams: dict, dtype: torch.dtype
) -> None:
    hp = {**load_baseline("optimizer", "adafactor").hparams, **hparams}
    # torch's eps1=None is finfo(param dtype).eps: give it the candidate's number in float64.
    eps1 = None if dtype == torch.float32 else hp["eps1"]
    theirs = _trajectory(
        lambda p: torch.optim.Adafactor(
            p,
            lr=hp["lr"],
            beta2_decay=hp["beta2_decay"],
            eps=(eps1, hp["eps2"]),
            d=hp["d"],
            weight_decay=hp["weight_decay"],
        ),
        [shape],
        dtype,
    )
    _assert_same(
        _trajectory(_candidate("adafactor", **hparams), [shape], dtype), theirs, TOL[dtype]
    )


def test_adafactor_factors_the_last_two_dims_into_row_and_column_state() -> None:
    init = load_baseline("optimizer", "adafactor").fn("init")
    state = init(torch.zeros(2, 3, 4))
    assert state["row_var"].shape == (2, 3, 1) and state["col_var"].shape == (2, 1, 4)
    state = init(torch.zeros(7))
    assert state["row_var"].shape == (7,) and state["col_var"].numel() == 0


# ---- NorMuon -------------------------------------------------------------------------------------


def _lockstep(
    shape: tuple[int, ...], steps: int, **hparams: float
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """(Muon's delta, NorMuon's delta, NorMuon's second moment) at each step, both fed the same
    gradients from the same weights, without weight decay so each delta is the pure update."""
    muon, normuon = load_baseline("optimizer", "muon"), load_baseline("optimizer", "normuon")
    muon_hp = {**muon.hparams, "weight_decay": 0.0}
    normuon_hp = {**normuon.hparams, "weight_decay": 0.0, **hparams}
    gen = torch.Generator().manual_seed(3)
    param = torch.randn(shape, generator=gen, dtype=torch.float64)
    muon_state, normuon_state = muon.fn("init")(param), normuon.fn("init")(param)
    for step in range(1, steps + 1):
        grad = torch.randn(shape, generator=gen, dtype=torch.float64)
        muon_delta, muon_state = muon.fn("update")(grad, param, muon_state, step, dict(muon_hp))
        delta, normuon_state = normuon.fn("update")(
            grad, param, normuon_state, step, dict(normuon_hp)
        )
        yield muon_delta, delta, normuon_state["exp_avg_sq"]


def _row_rms(x: Tensor) -> Tensor:
    return x.square().mean(dim=-1).sqrt()


def test_normuon_defaults_are_muons_plus_the_authors_beta2() -> None:
    muon, normuon = (load_baseline("optimizer", n).hparams for n in ("muon", "normuon"))
    assert normuon == {**muon, "beta2": 0.95}  # 0.95: the released code's default


@pytest.mark.parametrize("shape", MATRICES)
def test_normuon_is_muons_update_with_each_row_rescaled_at_the_same_frobenius_norm(
    shape: tuple[int, int],
) -> None:
    for muon_delta, delta, _ in _lockstep(shape, steps=8):
        scale = _row_rms(delta) / _row_rms(muon_delta)  # one positive factor per row
        assert (scale > 0).all() and scale.max() > 1.01 * scale.min()  # rows really rescaled
        torch.testing.assert_close(delta, scale[:, None] * muon_delta)
        torch.testing.assert_close(delta.norm(), muon_delta.norm())


@pytest.mark.parametrize("shape", MATRICES)
def test_normuon_rows_have_the_rms_its_per_row_second_moment_gives(shape: tuple[int, int]) -> None:
    """Row i of the update is O_i / sqrt(v_i), rescaled to ||O||_F, with v the beta2-EMA of the
    row's mean square: O is Muon's orthogonalised update (its delta / -(lr * sqrt(max(1, A/B))))."""
    hp = load_baseline("optimizer", "normuon").hparams
    rows, cols = shape
    adjusted_lr = hp["lr"] * math.sqrt(max(1.0, rows / cols))
    v = torch.zeros(rows, dtype=torch.float64)
    for step, (muon_delta, delta, state_v) in enumerate(_lockstep(shape, steps=8), start=1):
        orthogonal = -muon_delta / adjusted_lr
        v = hp["beta2"] * v + (1 - hp["beta2"]) * _row_rms(orthogonal).square()
        torch.testing.assert_close(state_v[:, 0], v)
        expected = _row_rms(orthogonal) / v.sqrt()
        expected *= orthogonal.norm() / math.sqrt(rows * cols) / expected.square().mean().sqrt()
        torch.testing.assert_close(_row_rms(delta), adjusted_lr * expected)
        if step == 1:  # v is then (1 - beta2) * each row's own mean square: every row equal
            torch.testing.assert_close(_row_rms(delta), delta.square().mean().sqrt().expand(rows))


def test_normuon_rows_are_equal_every_step_when_beta2_is_zero() -> None:
    for _, delta, _ in _lockstep((6, 4), steps=5, beta2=0.0):
        rms = delta.square().mean().sqrt()
        torch.testing.assert_close(_row_rms(delta), rms.expand(6))


@pytest.mark.parametrize("shape", OTHERS)
def test_normuon_gives_other_tensors_muons_adamw(shape: tuple[int, ...]) -> None:
    for muon_delta, delta, _ in _lockstep(shape, steps=5):
        torch.testing.assert_close(delta, muon_delta, rtol=0, atol=0)
