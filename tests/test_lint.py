"""The lint entry point really checks across packages: a type error that crosses from one optforge
package into another (the kind mypy used to miss, when `optforge.*` resolved to Any) fails it."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

PROBE = '''
from optforge.agent.config import CampaignConfig
from optforge.archive import ArchiveStore


def campaign_name(config: CampaignConfig) -> str:
    return config.evaluation          # an EvaluationConfig, not a str


def store_path(store: ArchiveStore) -> int:
    return store.path                 # a pathlib.Path, not an int
'''


@pytest.mark.slow
def test_a_cross_package_type_error_fails_the_type_check(tmp_path: pathlib.Path) -> None:
    probe = tmp_path / "_typecheck_probe.py"
    probe.write_text(PROBE)
    done = subprocess.run(["bash", str(REPO / ".ci" / "typecheck.sh"), str(probe)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if "_typecheck_probe.py" in line]
    assert len(errors) == 2, done.stdout
    assert "EvaluationConfig" in errors[0] and "expected \"str\"" in errors[0]
    assert "Path" in errors[1] and "expected \"int\"" in errors[1]
