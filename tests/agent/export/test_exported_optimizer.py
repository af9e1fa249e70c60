"""Exported optimizer files are the scored adapter: same code, same trajectories, same torch.optim
behaviour (state_dict, closures, param groups, LR schedulers, params without gradients, CUDA)."""

from __future__ import annotations

import ast
import inspect
import io
import pathlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from optforge.tasks import adapters
from optforge.tasks.baselines import baseline_names, load_baseline
from tests.tasks.test_adapters import _data, _max_abs_diff, _model, _train

from .campaigns import export_baseline, import_file

NAMES = baseline_names("optimizer")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModuleType]:
    """Every bundled optimizer, stored in a campaign archive, exported, and imported from its file."""
    root = tmp_path_factory.mktemp("exports")
    return {name: import_file(export_baseline(root, "optimizer", name)) for name in NAMES}


def _hparams(name: str) -> dict[str, float]:
    """Non-default hyperparameters, weight decay included, so every term of a rule runs."""
    hp = {"lr": load_baseline("optimizer", name).hparams["lr"] * 3}
    if "weight_decay" in load_baseline("optimizer", name).hparams:
        hp["weight_decay"] = 0.02
    return hp


def _trajectory(make: Callable[[Any], torch.optim.Optimizer], steps: int = 25) -> list[Tensor]:
    """Every parameter after every minibatch step of a small MLP, float32 as the tasks train."""
    model, (x, y) = _model(torch.float32), _data(torch.float32)
    opt = make(model.parameters())
    seen = []
    for step in range(steps):
        batch = slice(8 * (step % 8), 8 * (step % 8) + 8)
        opt.zero_grad()
        F.cross_entropy(model(x[batch]), y[batch]).backward()
        opt.step()
        seen += [p.detach().clone() for p in model.parameters()]
    return seen


@pytest.mark.parametrize("name", NAMES)
def test_exported_optimizer_follows_the_scored_adapter_bit_for_bit(
    exported: dict[str, ModuleType], name: str
) -> None:
    hp = _hparams(name)
    ours = _trajectory(lambda p: exported[name].DiscoveredOptimizer(p, **hp))
    scored = _trajectory(
        lambda p: adapters.CandidateOptimizer(p, load_baseline("optimizer", name), **hp)
    )
    assert all(torch.equal(a, b) for a, b in zip(ours, scored, strict=True))


def test_exported_file_holds_the_adapter_source_verbatim(exported: dict[str, ModuleType]) -> None:
    module = exported["adamw"]
    for name in ("CandidateOptimizer", "first_line", "_require_kind", "CandidateRuntimeError"):
        assert inspect.getsource(getattr(module, name)) == inspect.getsource(
            getattr(adapters, name)
        )
    assert issubclass(module.DiscoveredOptimizer, torch.optim.Optimizer)


def test_exported_file_imports_only_the_standard_library_and_torch(
    exported: dict[str, ModuleType],
) -> None:
    tree = ast.parse(pathlib.Path(exported["lion"].__file__ or "").read_text())
    imported = {
        (alias.name if isinstance(node, ast.Import) else node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert "torch" in imported
    assert imported - {"torch"} <= sys.stdlib_module_names, imported


TWINS: dict[str, tuple[dict[str, float], Callable[[Any], torch.optim.Optimizer]]] = {
    "adamw": ({"lr": 1e-2}, lambda p: torch.optim.AdamW(p, lr=1e-2)),
    "sgd": (
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3},
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
    ),
    "rmsprop": ({"lr": 1e-2}, lambda p: torch.optim.RMSprop(p, lr=1e-2)),
}


@pytest.mark.parametrize("name", sorted(TWINS))
def test_exported_baseline_matches_torch_optim_in_float64(
    exported: dict[str, ModuleType], name: str
) -> None:
    hp, twin = TWINS[name]
    ours = _train(lambda p: exported[name].DiscoveredOptimizer(p, **hp), 100)
    assert _max_abs_diff(ours, _train(twin, 100)) < 1e-10


def _plain(value: Any) -> bool:
    """Whether `value` holds only what torch.load(weights_only=True) may read back."""
    if isinstance(value, dict):
        return all(isinstance(k, str | int) and _plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, Tensor | int | float | bool | str)


@pytest.mark.parametrize("name", ["adamw", "lion", "nesterov"])
def test_state_dict_round_trips_through_torch_save_and_resumes_identically(
    exported: dict[str, ModuleType], name: str
) -> None:
    make, (x, y) = exported[name].DiscoveredOptimizer, _data()

    def run(model: nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

    uninterrupted = _train(make, 20)
    model = _model()
    opt = make(model.parameters())
    run(model, opt, 10)
    assert _plain(opt.state_dict())
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed = _model()
    resumed.load_state_dict(saved["model"])
    resumed_opt = make(resumed.parameters())
    resumed_opt.load_state_dict(saved["opt"])
    run(resumed, resumed_opt, 10)
    assert _max_abs_diff([p.detach() for p in resumed.parameters()], uninterrupted) == 0.0


def test_step_with_closure_returns_the_closure_loss(exported: dict[str, ModuleType]) -> None:
    model, (x, y) = _model(), _data()
    opt = exported["adam"].DiscoveredOptimizer(model.parameters(), lr=1e-2)
    returned = []

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        returned.append(loss)
        return loss

    first = opt.step(closure)
    assert first is returned[0]
    assert opt.step(closure).item() < first.item()


def _unit_grad_step(opt: torch.optim.Optimizer, params: list[nn.Parameter]) -> None:
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()


def test_param_groups_use_their_own_learning_rates(exported: dict[str, ModuleType]) -> None:
    a, b = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2))
    opt = exported["sgd"].DiscoveredOptimizer([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.1)
    _unit_grad_step(opt, [a, b])
    _unit_grad_step(opt, [a, b])
    torch.testing.assert_close(a.detach(), torch.full((3,), -1.0))
    torch.testing.assert_close(b.detach(), torch.full((2,), -0.2))


SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer], Any]] = {
    "step": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.5),
    "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20),
    # cycle_momentum: the sgd candidate's "momentum" hyperparameter is cycled like torch.optim.SGD's.
    "one_cycle": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=30),
}


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_lr_schedulers_drive_the_exported_optimizer_like_torch_sgd(
    exported: dict[str, ModuleType], scheduler: str
) -> None:
    make = SCHEDULERS[scheduler]
    ours = _train(
        lambda p: exported["sgd"].DiscoveredOptimizer(p, lr=0.5, momentum=0.9), 30, scheduler=make
    )
    theirs = _train(lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9), 30, scheduler=make)
    constant = _train(lambda p: exported["sgd"].DiscoveredOptimizer(p, lr=0.5, momentum=0.9), 30)
    assert _max_abs_diff(ours, theirs) < 1e-10
    assert _max_abs_diff(ours, constant) > 1e-3  # the schedule really changed the updates


def test_one_cycle_without_momentum_cycling_drives_an_adam_like_candidate(
    exported: dict[str, ModuleType],
) -> None:
    p = nn.Parameter(torch.zeros(1, dtype=torch.float64))  # float64: steps of 4e-7 stay exact
    opt = exported["adamw"].DiscoveredOptimizer([p], lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=10, cycle_momentum=False
    )
    moves = []
    for _ in range(10):
        before, lr = p.item(), opt.param_groups[0]["lr"]
        _unit_grad_step(opt, [p])
        sched.step()
        moves.append((before - p.item(), lr))
    # A constant unit gradient makes Adam's bias-corrected step exactly lr (up to eps).
    assert [m for m, _ in moves] == pytest.approx([lr for _, lr in moves], rel=1e-5)
    assert max(lr for _, lr in moves) > 10 * moves[0][1]


def test_params_without_grad_are_skipped_untouched(exported: dict[str, ModuleType]) -> None:
    used, unused = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = exported["adam"].DiscoveredOptimizer([used, unused], lr=0.1)
    (used**2).sum().backward()
    opt.step()
    assert unused.grad is None and torch.equal(unused.detach(), torch.ones(2))
    assert unused not in opt.state and opt.state[used]["step"] == 1
    assert not torch.equal(used.detach(), torch.ones(2))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["adamw", "lion"])
def test_exported_optimizer_runs_on_cuda_like_the_adapter(
    exported: dict[str, ModuleType], name: str
) -> None:
    def trajectory(make: Callable[[Any], torch.optim.Optimizer]) -> list[Tensor]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4)).cuda()
        x, y = (t.cuda() for t in _data(torch.float32))
        opt = make(model.parameters())
        for _ in range(10):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        assert all(t.is_cuda for s in opt.state.values() for t in s["candidate"].values())
        return [p.detach().cpu() for p in model.parameters()]

    ours = trajectory(exported[name].DiscoveredOptimizer)
    scored = trajectory(lambda p: adapters.CandidateOptimizer(p, load_baseline("optimizer", name)))
    assert all(torch.equal(a, b) for a, b in zip(ours, scored, strict=True))
