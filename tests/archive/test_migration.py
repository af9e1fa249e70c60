"""Archives written by an older optforge open in this one: migrated in place, nothing lost."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from optforge.archive import SCHEMA_VERSION, ArchiveStore, EvaluationRecord, LLMCallRecord

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


# Written by optforge at commit 14fd3d2 (schema version 3): a candidate with the LLM call that made
# it, a failed call and a call whose reply was not used (kept with no candidate), and an event.
V3_ARCHIVE = Path(__file__).parent / "data" / "archive-v3.sqlite"


def test_a_version_3_archive_keeps_its_llm_calls_and_records_prompts_and_replies_after(
    tmp_path: Path,
) -> None:
    path = tmp_path / "archive.sqlite"
    shutil.copyfile(V3_ARCHIVE, path)
    assert _schema_rows(path) == [("optforge-archive", 3)]
    with ArchiveStore.open(path) as store:
        (candidate,) = store.candidates()
        calls = store.llm_calls()
        assert [(c.candidate_id, c.tokens_in, c.cost_usd, c.error) for c in calls] == [
            (candidate.id, 300, 0.002, None),
            (None, 0, None, "APITimeoutError: timed out [3 attempts]"),
            (None, 500, None, None),
        ]
        # Nothing was kept of what was said, and no reason: no claim is made about either.
        assert {(c.prompt, c.reply, c.rejected) for c in calls} == {(None, None, None)}
        assert candidate.prompt == "[system]\nbe brief"  # the candidate's own transcript is kept
        new = LLMCallRecord(None, "new-model", 10, 2, None, 0.1, rejected="no code in the reply",
                            prompt="[system]\nS\n\n[user]\nU", reply="I would try momentum.")
        store.add_llm_call(new)
        assert store.llm_calls()[-1] == new
        assert [seq for seq, _ in store.numbered_llm_calls()] == [1, 2, 3, 4]
        assert store.counts().llm_rejected == 1
    assert _schema_rows(path) == [("optforge-archive", v) for v in range(3, SCHEMA_VERSION + 1)]
    with sqlite3.connect(path) as db:  # the migrated table is as append-only as a new one
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE llm_calls SET reply = 'edited' WHERE seq = 4")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM llm_calls")
    with ArchiveStore.open(path) as store:
        assert store.llm_calls()[-1].reply == "I would try momentum."
    assert len(_schema_rows(path)) == SCHEMA_VERSION - 2  # migrated once: versions 3 and 4
