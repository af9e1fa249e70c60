"""The optforge command line, run as a real subprocess like a user would."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
LION = REPO / "tasks" / "baselines" / "optimizers" / "lion.py"


def optforge(*args: str, cache: pathlib.Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPTFORGE_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "optforge.agent.cli.main", *args],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )


def test_tasks_lists_every_tier(tmp_path):
    out = optforge("tasks", "--json", cache=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["tier"] for r in rows} == {1, 2}
    assert all(r["steps"] > 0 and r["version"] for r in rows)
    preference = [r for r in rows if r["kinds"] == ["preference_loss"]]
    assert [(r["tier"], len(r["seeds"])) for r in preference] == [(1, 1), (2, 3)]
    assert not any("preference_loss" in r["kinds"] for r in rows if r not in preference)
    table = optforge("tasks", cache=tmp_path)
    assert "char_transformer" in table.stdout and "mlp_digits" in table.stdout
    assert "shakespeare_vader" in table.stdout


def test_evaluate_tier0_json(tmp_path):
    out = optforge("evaluate", str(LION), "--tier", "0", "--json", cache=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "ok" and result["score"] is None and result["tasks"] == []
    assert result["kind"] == "optimizer" and result["batching"] == "vmap_lr"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "no/such/file.py"], "no such file: no/such/file.py"),
        (["evaluate", str(LION), "--kind", "loss", "--tier", "0"], "status invalid"),
        (["evaluate", str(REPO / "README.md")], "cannot tell the kind"),
        (["evaluate", str(LION), "--seeds", "0"], "--seeds must be at least 1"),
    ],
)
def test_bad_input_is_one_clear_line_and_nonzero_exit(tmp_path, args, message):
    out = optforge(*args, cache=tmp_path)
    assert out.returncode != 0
    assert message in out.stderr + out.stdout


def test_contract_violation_exits_nonzero_with_the_reason(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(LION.read_text().replace("import torch", "import torch\nimport subprocess"))
    out = optforge("evaluate", str(bad), "--json", cache=tmp_path)
    assert out.returncode == 1
    result = json.loads(out.stdout)
    assert result["status"] == "invalid" and "subprocess" in result["error"] and result["score"] is None


@pytest.mark.slow
def test_evaluate_lion_tier1_json_has_the_documented_fields(tmp_path):
    out = optforge("evaluate", str(LION), "--json", "--seeds", "4", cache=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert isinstance(result["score"], float) and result["status"] == "ok"
    assert len(result["tasks"]) >= 5
    for task in result["tasks"]:
        assert {"name", "status", "score"} <= set(task)
        assert task["status"] == "ok" and task["score"] > 0


def test_without_bubblewrap_the_cli_refuses_and_says_how_to_proceed(tmp_path):
    env = {"PATH": str(tmp_path), "OPTFORGE_CACHE_DIR": str(tmp_path)}  # no bwrap on this PATH
    out = subprocess.run(
        [sys.executable, "-m", "optforge.agent.cli.main", "evaluate", str(LION), "--tier", "0"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "install bubblewrap" in lines[0] and "--allow-unisolated" in lines[0]
