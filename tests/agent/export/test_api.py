"""optforge.load_optimizer / load_loss / load_schedule / load_preference_loss, from an exported
file or "DIR:ID"."""

from __future__ import annotations

import pathlib
import sqlite3
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import optforge
from optforge.agent.export import ExportError, export_candidate
from optforge.archive.export import ExportIntegrityError
from optforge.tasks.adapters import CandidateOptimizer, CandidatePreferenceLoss
from optforge.tasks.baselines import load_baseline

from .campaigns import make_campaign


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, dict]:
    """An optimizer campaign, a loss campaign and a schedule campaign side by side."""
    root = tmp_path_factory.mktemp("api")
    records = {
        **make_campaign(root / "opt", "optimizer", ["adamw", "lion"]),
        **make_campaign(root / "loss", "loss", ["focal", "cross_entropy"]),
        **make_campaign(root / "sched", "schedule", ["linear_decay"]),
        **make_campaign(root / "pref", "preference_loss", ["lrml"]),
        **make_campaign(root / "scale", "scaling_rule", ["mup_wd_linear"]),
    }
    return root, records


def _export(root: pathlib.Path, campaign: str, record, tmp_path: pathlib.Path) -> pathlib.Path:
    return export_candidate(root / campaign, record.id, tmp_path / f"{record.name}.py")[1]


def _train(opt_params: list[nn.Parameter], opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 4, generator=gen), torch.randn(32, generator=gen)
    w, b = opt_params
    for _ in range(15):
        opt.zero_grad()
        ((x @ w + b - y) ** 2).mean().backward()
        opt.step()
    return [p.detach().clone() for p in opt_params]


def _params() -> list[nn.Parameter]:
    return [nn.Parameter(torch.full((4,), 0.5)), nn.Parameter(torch.zeros(()))]


def test_load_optimizer_from_a_file_and_from_dir_id_equals_the_scored_adapter(campaign, tmp_path):
    root, records = campaign
    lion = records["lion"]
    path = _export(root, "opt", lion, tmp_path)
    from_file = _train(p := _params(), optforge.load_optimizer(path, p, lr=1e-3))
    from_archive = _train(
        p := _params(), optforge.load_optimizer(f"{root / 'opt'}:{lion.id[:7]}", p, lr=1e-3)
    )
    scored = _train(
        p := _params(), CandidateOptimizer(p, load_baseline("optimizer", "lion"), lr=1e-3)
    )
    assert all(torch.equal(a, b) for a, b in zip(from_file, scored, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(from_archive, scored, strict=True))
    assert not torch.equal(scored[0], _params()[0])


def test_an_edited_candidate_code_in_the_file_is_refused(campaign, tmp_path):
    root, records = campaign
    path = _export(root, "opt", records["adamw"], tmp_path)
    text = path.read_text()
    edited = text.replace('"beta1": 0.9,', '"beta1": 0.8,', 1)  # one character of the code
    assert edited != text
    path.write_text(edited)
    with pytest.raises(
        ExportIntegrityError, match="does not match its recorded sha256.*export it again"
    ):
        optforge.load_optimizer(path, _params())


def test_a_file_not_written_by_export_is_refused(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("import torch\n")
    with pytest.raises(ExportIntegrityError, match="not a file written by `optforge export`"):
        optforge.load_optimizer(path, _params())


def test_an_archive_whose_code_no_longer_matches_its_id_is_refused(tmp_path):
    records = make_campaign(tmp_path / "c", "optimizer", ["sgd"])
    with sqlite3.connect(tmp_path / "c" / "archive.sqlite") as db:
        # Altered below the store, as a damaged or hand-edited file would be: the store's
        # triggers forbid updates, so drop them first.
        for (trigger,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        ).fetchall():
            db.execute(f"DROP TRIGGER {trigger}")
        db.execute(
            "UPDATE candidates SET source = source || 'X = 1\n' WHERE id = ?", (records["sgd"].id,)
        )
    with pytest.raises(ExportError, match="does not hash to its id: the archive was altered"):
        optforge.load_optimizer(f"{tmp_path / 'c'}:{records['sgd'].id[:8]}", _params())


def test_loading_the_wrong_kind_names_the_right_loader(campaign, tmp_path):
    root, records = campaign
    with pytest.raises(
        ExportError,
        match="is of kind 'loss', optforge.load_optimizer loads kind 'optimizer'; use optforge.load_loss",
    ):
        optforge.load_optimizer(f"{root / 'loss'}:{records['focal'].id[:8]}", _params())
    path = _export(root, "opt", records["adamw"], tmp_path)
    with pytest.raises(
        ExportError, match="kind 'optimizer', optforge.load_schedule loads kind 'schedule'"
    ):
        optforge.load_schedule(path, torch.optim.SGD(_params(), lr=0.1), total_steps=10)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("no/such/file.py", "no such file; give an exported .py file or DIR:ID"),
        ("{root}/nowhere:abc", "no campaign in"),
        ("{root}/opt:fff000", "no candidate id starts with 'fff000'"),
        ("{root}/opt:xyz", "is not a candidate id"),
    ],
)
def test_a_bad_source_says_what_to_give(campaign, source, message):
    root, _ = campaign
    with pytest.raises(ExportError, match=message):
        optforge.load_optimizer(source.format(root=root), _params())


@pytest.mark.parametrize("how", ["file", "archive"])
def test_loaded_losses_compute_the_candidate_with_gradients(campaign, tmp_path, how):
    root, records = campaign
    record = records["cross_entropy"]
    source = (
        _export(root, "loss", record, tmp_path)
        if how == "file"
        else f"{root / 'loss'}:{record.id[:9]}"
    )
    loss_fn = optforge.load_loss(source)
    assert isinstance(loss_fn, nn.Module)
    logits = torch.randn(6, 3, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    value = loss_fn(logits, targets)
    torch.testing.assert_close(value, F.cross_entropy(logits, targets))
    value.backward()
    assert logits.grad is not None


def test_an_exported_focal_loss_trains_a_model(campaign, tmp_path):
    root, records = campaign
    module_loss = optforge.load_loss(_export(root, "loss", records["focal"], tmp_path))
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    model = nn.Linear(5, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    first = module_loss(model(x), y).item()
    for _ in range(30):
        opt.zero_grad()
        module_loss(model(x), y).backward()
        opt.step()
    assert module_loss(model(x), y).item() < 0.8 * first


@pytest.mark.parametrize("how", ["file", "archive"])
def test_loaded_schedules_drive_the_learning_rate(campaign, tmp_path, how):
    root, records = campaign
    record = records["linear_decay"]
    source = (
        _export(root, "sched", record, tmp_path)
        if how == "file"
        else f"{root / 'sched'}:{record.id[:8]}"
    )
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    scheduler = optforge.load_schedule(source, opt, total_steps=10)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(1)
        opt.step()
        scheduler.step()
    assert seen == pytest.approx([0.1 * (1 - i / 10) for i in range(10)])


def test_import_optforge_is_light_and_the_packages_still_import():
    # A fresh interpreter: the test process has torch loaded already.
    code = (
        "import sys, optforge; assert 'torch' not in sys.modules, 'optforge imported torch';"
        "import optforge.sandbox.worker; assert 'torch' not in sys.modules, 'the worker imported torch';"
        "assert callable(optforge.load_optimizer) and callable(optforge.load_schedule)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd="/")


@pytest.mark.parametrize("how", ["file", "archive"])
def test_loaded_preference_losses_compute_the_scored_adapter_per_pair(campaign, tmp_path, how):
    root, records = campaign
    record = records["lrml"]
    source = (_export(root, "pref", record, tmp_path) if how == "file" else f"{root / 'pref'}:{record.id[:9]}")
    loss_fn = optforge.load_preference_loss(source)
    assert isinstance(loss_fn, nn.Module)
    policy = (torch.randn(6) - 40).requires_grad_(True), (torch.randn(6) - 40).requires_grad_(True)
    reference = torch.randn(6) - 40, torch.randn(6) - 40
    losses = loss_fn(*policy, *reference, 0.3)
    expected = CandidatePreferenceLoss(load_baseline("preference_loss", "lrml"))(*policy, *reference, 0.3)
    assert losses.shape == (6,) and torch.equal(losses, expected)
    losses.mean().backward()
    assert policy[0].grad is not None and torch.isfinite(policy[0].grad).all()


@pytest.mark.parametrize("how", ["file", "archive"])
def test_loaded_scaling_rules_give_the_scored_hyperparameters(campaign, tmp_path, how):
    root, records = campaign
    record = records["mup_wd_linear"]
    source = (_export(root, "scale", record, tmp_path) if how == "file" else f"{root / 'scale'}:{record.id[:9]}")
    rule = optforge.load_scaling_rule(source)
    assert rule(256, 32, "hidden", {"lr": 0.008, "weight_decay": 0.1}) == {"lr": 0.001, "weight_decay": 0.8}
    with pytest.raises(ExportError, match="optforge.load_scaling_rule loads kind 'scaling_rule'"):
        optforge.load_scaling_rule(f"{root / 'pref'}:{records['lrml'].id[:9]}")
