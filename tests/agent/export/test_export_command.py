"""`optforge export DIR ID`: the file it writes, its provenance header, and its one-line errors."""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import runpy
import sys

import pytest
import torch

from optforge.agent.cli.main import main
from optforge.archive.export import read_export, source_sha256
from optforge.tasks.baselines import baseline_source

from .campaigns import COMMIT, import_file, make_campaign


@pytest.fixture
def campaign(tmp_path: pathlib.Path) -> tuple[pathlib.Path, dict]:
    directory = tmp_path / "runs" / "opt"
    return directory, make_campaign(directory, "optimizer", ["adamw", "lion"])


def test_export_writes_name_and_short_id_in_the_working_directory_by_default(
    campaign, tmp_path, monkeypatch, capsys
):
    directory, records = campaign
    monkeypatch.chdir(tmp_path)
    lion = records["lion"]
    assert main(["export", str(directory), lion.id[:6]]) == 0
    path = tmp_path / f"lion_{lion.id[:8]}.py"
    assert path.is_file()
    assert f"from lion_{lion.id[:8]} import DiscoveredOptimizer" in capsys.readouterr().out


def test_the_header_records_provenance_scores_and_learning_rates(campaign, tmp_path):
    directory, records = campaign
    lion, out = records["lion"], tmp_path / "lion_export.py"
    assert main(["export", str(directory), lion.id[:10], "-o", str(out)]) == 0
    text = out.read_text()
    header = ast.get_docstring(ast.parse(text)) or ""
    for expected in (
        str(directory.resolve()),
        lion.id,
        source_sha256(lion.source),
        "optimizer",
        "tier 1 (screen): 1.100 [95% CI 1.060, 1.140], status ok, 8 seeds",
        "tier 2 (held out): 1.050 [95% CI 1.010, 1.090], status ok, 4 seeds",
        f"optforge commit {COMMIT}",
        "learning-rate sweep: 0.00025, 0.001, 0.004, 0.016",
        "mlp_digits: 1.100 [95% CI 1.050, 1.150], best lr 0.004 (AdamW 0.001), ok",
        "from lion_export import DiscoveredOptimizer",
        # Against the best other tuned baseline on tier 2, paired seed by seed (0.3/0.95 over
        # 0.3/1.05 on every seed of the fixture: 1.105 with no spread).
        "Against the best tuned baseline on tier 2 (held out), paired seed by seed:\n"
        "  adamw (0.950 x tuned AdamW): 1.105 [95% CI 1.105, 1.105]\n"
        "  (adamw's final held-out metric / this candidate's, geometric mean over\n"
        "  1 task, 4 seeds each; >1 is better)",
    ):
        assert expected in header, expected
    exported = read_export(text, str(out))
    assert exported.source == baseline_source("optimizer", "lion")  # verbatim, byte for byte
    tier2 = exported.provenance["evaluations"]["tier2"]
    assert tier2["tasks"]["mlp_digits_wide"]["lr"] == 4e-3 and tier2["code_commit"] == COMMIT
    assert exported.provenance == import_file(out).PROVENANCE


def test_the_header_says_when_no_baseline_ran_tier_2(tmp_path):
    directory = tmp_path / "runs" / "one"
    lion = make_campaign(directory, "optimizer", ["lion"])["lion"]
    out = tmp_path / "lion_export.py"
    assert main(["export", str(directory), lion.id[:10], "-o", str(out)]) == 0
    header = ast.get_docstring(ast.parse(out.read_text())) or ""
    assert (
        "no baseline was evaluated on tier 2 in this campaign (cascade.seeds_tier2 = true" in header
    )


def test_export_refuses_to_overwrite_unless_forced(campaign, tmp_path, capsys):
    directory, records = campaign
    out = tmp_path / "mine.py"
    out.write_text("# my own work\n")
    assert main(["export", str(directory), records["adamw"].id[:8], "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("optforge: error: ") and "--force" in err
    assert out.read_text() == "# my own work\n"
    assert main(["export", str(directory), records["adamw"].id[:8], "-o", str(out), "--force"]) == 0
    assert read_export(out.read_text(), str(out)).provenance["name"] == "adamw"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{dir}", "ffff00"], "no candidate id starts with 'ffff00'"),
        (["{dir}", "not-hex"], "is not a candidate id"),
        (["{dir}", ""], "is not a candidate id"),
        (["{tmp}/nowhere", "abc"], "no campaign in"),
        (["{dir}", "{adamw}", "-o", "{tmp}/out.txt"], "must end in .py"),
        (["{dir}", "{adamw}", "-o", "{tmp}/no/such/dir/x.py"], "is not a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(campaign, tmp_path, capsys, args, message):
    directory, records = campaign
    fill = {"dir": directory, "tmp": tmp_path, "adamw": records["adamw"].id[:8]}
    assert main(["export", *(a.format(**fill) for a in args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optforge: error: ") and err.count("\n") == 1 and message in err, err


def test_losses_and_schedules_export_their_own_objects(tmp_path):
    for kind, name, public in (
        ("loss", "label_smoothing", "DiscoveredLoss"),
        ("schedule", "wsd", "discovered_schedule"),
        ("preference_loss", "ipo", "discovered_preference_loss"),
        ("scaling_rule", "mup_wd_sqrt", "param_groups"),
    ):
        directory = tmp_path / kind
        record = make_campaign(directory, kind, [name])[name]
        out = tmp_path / f"{name}.py"
        assert main(["export", str(directory), record.id[:8], "-o", str(out)]) == 0
        module = import_file(out)
        assert public in module.__all__ and module.PROVENANCE["kind"] == kind


@pytest.mark.parametrize(
    ("kind", "name", "public"),
    [("optimizer", "lion", "DiscoveredOptimizer"), ("loss", "focal", "DiscoveredLoss"),
     ("schedule", "wsd", "discovered_schedule"), ("preference_loss", "slic", "DiscoveredPreferenceLoss"),
     ("scaling_rule", "mup", "discovered_scale")],
)
def test_an_exported_file_loads_however_a_users_tooling_loads_files(tmp_path, kind, name, public):
    """Registered in sys.modules or not (importlib's file loaders do not register), or run as a
    script: each way gives the public object."""
    directory = tmp_path / kind
    record = make_campaign(directory, kind, [name])[name]
    out = tmp_path / f"{name}_export.py"
    assert main(["export", str(directory), record.id[:8], "-o", str(out)]) == 0
    spec = importlib.util.spec_from_file_location(f"unregistered_{kind}", out)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # never put in sys.modules
    assert f"unregistered_{kind}" not in sys.modules
    assert module.PROVENANCE["candidate_id"] == record.id and public in module.__all__
    assert public in runpy.run_path(str(out))
    assert getattr(import_file(out), public) is not None


def test_a_preference_loss_export_says_it_is_scored_against_dpo(tmp_path):
    record = make_campaign(tmp_path / "c", "preference_loss", ["lrml"])["lrml"]
    out = tmp_path / "lrml_export.py"
    assert main(["export", str(tmp_path / "c"), record.id[:8], "-o", str(out)]) == 0
    doc = import_file(out).__doc__
    assert "Scores against DPO (area under the reward-vs-KL hull" in doc and "tuned AdamW (AdamW's" not in doc


def test_a_scaling_rule_export_builds_adamw_groups_with_torch_alone(tmp_path):
    record = make_campaign(tmp_path / "c", "scaling_rule", ["mup"])["mup"]
    out = tmp_path / "mup_export.py"
    assert main(["export", str(tmp_path / "c"), record.id[:8], "-o", str(out)]) == 0
    module = import_file(out)
    assert "Scores against each width's tuned optimum" in module.__doc__
    model = torch.nn.Sequential(torch.nn.Linear(128, 128), torch.nn.LayerNorm(128))
    base = {g: {"lr": 0.01, "weight_decay": 0.1} for g in ("hidden", "vector")}
    groups = module.param_groups(model, 128, 32, base)
    assert [(g["group"], g["lr"]) for g in groups] == [("hidden", 0.0025), ("vector", 0.01)]
    torch.optim.AdamW(groups)
    assert module.discovered_scale(64, 32, "output", {"lr": 0.01, "weight_decay": 0.0}) == {"lr": 0.005, "weight_decay": 0.0}
