"""Archives written by an older optforge open in this one: migrated in place, nothing lost."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from optforge.archive import SCHEMA_VERSION, ArchiveStore, EvaluationRecord

# Written by optforge at commit a0b8730 (schema version 1): one candidate and its tier-1 evaluation.
V1_ARCHIVE = Path(__file__).parent / "data" / "archive-v1.sqlite"


def _copy(tmp_path: Path) -> Path:
    path = tmp_path / "archive.sqlite"
    shutil.copyfile(V1_ARCHIVE, path)
    return path


def _schema_rows(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT application, version FROM schema ORDER BY version").fetchall()


def test_a_version_1_archive_is_migrated_on_open_and_keeps_its_records(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    assert _schema_rows(path) == [("optforge-archive", 1)]
    with ArchiveStore.open(path) as store:
        (candidate,) = store.candidates()
        (evaluation,) = store.evaluations()
        assert candidate.name == "sgd_v1"
        assert (evaluation.score, evaluation.score_ci, evaluation.code_commit) == (0.8, (0.7, 0.9), "a0b8730")
        assert evaluation.environment == {}  # it predates the column: no claim about where it ran
        assert evaluation.batching is None  # nor about batching modes, which did not exist then
        assert store.config()["note"] == "schema v1 fixture"
    assert _schema_rows(path) == [("optforge-archive", v) for v in range(1, SCHEMA_VERSION + 1)]


def test_a_migrated_archive_records_environments_and_is_migrated_only_once(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    with ArchiveStore.open(path) as store:
        (candidate,) = store.candidates()
        env = {"sandbox": "docker", "image": "optforge-sandbox:abc", "image_id": "sha256:00ff"}
        store.add_evaluation(EvaluationRecord(candidate.id, 2, "ok", score=0.9, environment=env,
                                              batching="vmap", batching_note="vmap_lr: update raised ..."))
    with ArchiveStore.open(path) as store:
        assert [e.environment for e in store.evaluations()] == [{}, env]
        assert [(e.batching, e.batching_note) for e in store.evaluations()] == [
            (None, None), ("vmap", "vmap_lr: update raised ...")]
    assert len(_schema_rows(path)) == SCHEMA_VERSION  # the second open found nothing to migrate
