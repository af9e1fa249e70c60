"""Choosing the isolation never silently degrades: no bubblewrap means an error or an explicit,
loud opt-in."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from optforge.sandbox import ProcessRunner, SandboxUnavailable, UnisolatedSandboxWarning


def test_auto_without_bwrap_on_path_raises_a_one_line_how_to_fix(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty dir: no bwrap anywhere
    with pytest.raises(SandboxUnavailable) as caught:
        ProcessRunner(workers=1)
    message = str(caught.value)
    assert "\n" not in message
    assert "apt-get install bubblewrap" in message and "allow_unisolated=True" in message


def test_bwrap_that_cannot_create_namespaces_is_unavailable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable, match="does not work here.*No permissions"):
        ProcessRunner(workers=1, isolation="bwrap", allow_unisolated=True)


def test_isolation_none_needs_explicit_consent() -> None:
    with pytest.raises(ValueError, match="allow_unisolated=True"):
        ProcessRunner(workers=1, isolation="none")


def test_running_unisolated_warns_and_logs_on_every_construction(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with warnings.catch_warnings(record=True) as seen:
        for _ in range(2):  # data_dir is invalid, so construction fails right after warning
            with pytest.raises(ValueError, match="data_dir"):
                ProcessRunner(workers=1, allow_unisolated=True, data_dir=tmp_path / "missing")
    unisolated = [w for w in seen if issubclass(w.category, UnisolatedSandboxWarning)]
    assert len(unisolated) == 2
    assert "network and filesystem isolation are off" in str(unisolated[0].message)
    logged = [r for r in caplog.records if r.name == "optforge.sandbox" and r.levelname == "WARNING"]
    assert len(logged) == 2
