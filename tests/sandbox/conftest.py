"""Shared runners: starting a worker costs an interpreter plus a torch import (~2-3 s), so tests
share one bubblewrap runner per session and start their own only when they need another setup."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from optforge.sandbox import Job, Limits, ProcessRunner

ENTRIES = "tests.sandbox.entries"
SECRET_NAME = "OPTFORGE_TEST_SECRET"
SECRET_VALUE = "sk-test-do-not-leak-4242"

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the per-job uid is used only as root")


def code_job(code: str, **limits: float) -> Job:
    """A job whose candidate is ``code`` (see tests/sandbox/entries.py:run_code)."""
    return Job(f"{ENTRIES}:run_code", {"code": code}, Limits(**limits))


@contextlib.contextmanager
def secret_in_environment() -> Iterator[None]:
    """A fake API key in the host's environment while workers start: they must not inherit it."""
    previous = os.environ.get(SECRET_NAME)
    os.environ[SECRET_NAME] = SECRET_VALUE
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(SECRET_NAME, None)
        else:
            os.environ[SECRET_NAME] = previous


@pytest.fixture(scope="session")
def outside_tmp() -> Iterator[Path]:
    """Host dirs outside /tmp (which bubblewrap masks anyway), so hiding is tested for real."""
    outside = "/var/tmp" if os.access("/var/tmp", os.W_OK) else None
    base = Path(tempfile.mkdtemp(prefix="optforge-test-", dir=outside))
    (base / "data").mkdir()
    (base / "data" / "train.txt").write_text("training data")
    (base / "heldout").mkdir()
    (base / "heldout" / "secret.txt").write_text("held-out labels")
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def runner(outside_tmp: Path) -> Iterator[ProcessRunner]:
    """Two bubblewrap workers, warmed up with a data dir, with a secret in the host environment."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    with secret_in_environment(), ProcessRunner(
        workers=2, warmup=[f"{ENTRIES}:warm_up"], data_dir=outside_tmp / "data",
        hidden_paths=[outside_tmp / "heldout"], isolation="bwrap",
    ) as shared:
        yield shared
