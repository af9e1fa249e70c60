"""Reading what a job left behind never follows its symlinks, blocks on its FIFOs or reads too much;
wiping works even on directories the job locked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from optforge.sandbox.scratch import force_rmtree, read_untrusted_file


def test_result_file_planted_as_symlink_to_a_host_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("api key")
    (tmp_path / "meta.json").symlink_to(secret)
    with pytest.raises(ValueError, match="meta.json"):
        read_untrusted_file(tmp_path / "meta.json", 1000)


def test_result_file_planted_as_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "result.safetensors")
    with pytest.raises(ValueError, match="not a regular file"):
        read_untrusted_file(tmp_path / "result.safetensors", 1000)


def test_oversized_result_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_bytes(b"x" * 2000)
    with pytest.raises(ValueError, match="larger than 1000 bytes"):
        read_untrusted_file(tmp_path / "meta.json", 1000)
    assert read_untrusted_file(tmp_path / "meta.json", 2000) == b"x" * 2000


def test_force_rmtree_removes_directories_locked_with_mode_000(tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / "a" / "b").mkdir(parents=True)
    (job / "a" / "b" / "f").write_text("x")
    (job / "link").symlink_to(tmp_path)  # must be removed, not followed
    os.chmod(job / "a" / "b", 0)
    os.chmod(job / "a", 0)
    os.chmod(job, 0)
    force_rmtree(job)
    assert not job.exists() and tmp_path.exists()
