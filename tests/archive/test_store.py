"""ArchiveStore on real SQLite files: append-only, clear errors on bad files, lookups, pending work."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from optforge.archive import (
    SCHEMA_VERSION,
    AmbiguousIdError,
    ArchiveExistsError,
    ArchiveStore,
    CorruptArchiveError,
    DuplicateEvaluationError,
    EventRecord,
    NewerSchemaError,
    NotAnArchiveError,
    UnknownCandidateError,
)
from tests.archive.factories import candidate, evaluation, llm_call

CONFIG = {"kind": "optimizer", "budget": {"candidates": 200}, "islands": 4}


@pytest.fixture
def store(tmp_path: Path):
    with ArchiveStore.create(tmp_path / "archive.sqlite", CONFIG) as s:
        yield s


def filled(store: ArchiveStore, n: int = 3) -> list[str]:
    ids = []
    for i in range(n):
        c = candidate(i)
        store.add_candidate(c)
        store.add_evaluation(evaluation(c.id, tier=0, fingerprint=f"fp{i}"))
        ids.append(c.id)
    store.add_event(EventRecord("start", {"pid": 1}, created_at=1.0))
    store.add_llm_call(llm_call(ids[0]))
    return ids


# -- creating and opening ----------------------------------------------------------------------


def test_create_stores_a_frozen_copy_of_the_config_and_the_schema_version(
    store: ArchiveStore,
) -> None:
    config = store.config()
    assert config == CONFIG
    config["islands"] = 99
    assert store.config() == CONFIG
    assert store._db.execute("SELECT application, version FROM schema").fetchall() == [
        ("optforge-archive", SCHEMA_VERSION)
    ]
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_create_refuses_to_overwrite_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    ArchiveStore.create(path, CONFIG).close()
    before = path.read_bytes()
    with pytest.raises(ArchiveExistsError, match="already exists: refusing to overwrite"):
        ArchiveStore.create(path, {"other": True})
    assert path.read_bytes() == before
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    with pytest.raises(ArchiveExistsError):
        ArchiveStore.create(other, CONFIG)
    assert other.read_text() == "mine"


def test_create_leaves_no_temporary_files_behind(tmp_path: Path) -> None:
    ArchiveStore.create(tmp_path / "runs" / "a.sqlite", CONFIG).close()  # parents are created
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["a.sqlite"]
    with pytest.raises(TypeError, match="JSON-serializable"):
        ArchiveStore.create(tmp_path / "b.sqlite", {"bad": object()})
    assert not (tmp_path / "b.sqlite").exists()


def test_reopening_gives_back_every_record_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    with ArchiveStore.create(path, CONFIG) as s:
        c = dataclasses.replace(candidate(1), thought="idea", prompt="p", reply="r")
        ev = evaluation(
            c.id,
            tier=1,
            score=1.3,
            score_ci=(1.1, 1.5),
            tasks=({"name": "mlp", "status": "ok", "metric": "loss", "score_ci": (1.0, 2.0)},),
            fingerprint="f",
            batching="vmap",
            batching_note="vmap_lr: update raised RuntimeError: vmap: ...",
            seeds=8,
            learning_rates=(1e-3, 4e-3),
            task_versions={"mlp": "v1"},
            descriptors={"state_tensors": 2},
            code_commit="abc",
            config_hash="h",
            seconds=3.5,
        )
        s.add_candidate(c, llm_calls=[llm_call(None)])
        s.add_evaluation(ev)
        s.add_event(EventRecord("stop", {"reason": "budget"}, created_at=5.0))
    with ArchiveStore.open(path) as s:
        assert s.candidates() == [c]
        assert s.evaluations() == [ev]
        assert s.llm_calls() == [llm_call(c.id)]  # stored against the candidate they produced
        assert s.events() == [EventRecord("stop", {"reason": "budget"}, created_at=5.0)]


def test_opening_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotAnArchiveError, match="file not found"):
        ArchiveStore.open(tmp_path / "nope.sqlite")
    assert not (tmp_path / "nope.sqlite").exists()  # opening never creates a file


def test_opening_random_bytes_says_it_is_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "random.sqlite"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(NotAnArchiveError, match="not an optforge archive"):
        ArchiveStore.open(path)


def test_opening_another_sqlite_database_says_it_is_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(NotAnArchiveError, match="SQLite database but not an optforge archive"):
        ArchiveStore.open(path)


def test_opening_a_truncated_file_says_it_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    with ArchiveStore.create(path, CONFIG) as s:
        for i in range(200):  # enough rows for many pages
            s.add_candidate(candidate(i, size=200))
    data = path.read_bytes()
    assert not Path(f"{path}-wal").exists()  # closing checkpointed the WAL into the file
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptArchiveError, match="is corrupt"):
        ArchiveStore.open(path)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.99])
def test_opening_a_file_with_a_damaged_page_says_it_is_corrupt(
    tmp_path: Path, where: float
) -> None:
    path = tmp_path / "a.sqlite"
    with ArchiveStore.create(path, CONFIG) as s:
        for i in range(200):
            s.add_candidate(candidate(i, size=200))
    data = bytearray(path.read_bytes())
    page = 4096 * max(1, int(len(data) / 4096 * where))
    data[page + 1 : page + 8] = b"\xff" * 7  # the b-tree page header: cell count, content start
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptArchiveError, match="is corrupt"):
        ArchiveStore.open(path)


def test_opening_a_newer_schema_asks_to_upgrade_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    ArchiveStore.create(path, CONFIG).close()
    with sqlite3.connect(path) as db:  # what a future optforge would have written
        db.execute("DROP TRIGGER schema_no_update")
        db.execute("UPDATE schema SET version = ?", (SCHEMA_VERSION + 1,))
    before = path.read_bytes()
    with pytest.raises(NewerSchemaError, match=f"version {SCHEMA_VERSION + 1}.*upgrade optforge"):
        ArchiveStore.open(path)
    assert path.read_bytes() == before


# -- append-only -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE candidates SET name = 'x'",
        "DELETE FROM candidates",
        "UPDATE evaluations SET score = 99",
        "DELETE FROM evaluations",
        "UPDATE llm_calls SET cost_usd = 0",
        "UPDATE llm_calls SET reply = 'edited', rejected = NULL",
        "DELETE FROM llm_calls",
        "UPDATE events SET kind = 'x'",
        "DELETE FROM events",
        "UPDATE campaign SET config = '{}'",
        "DELETE FROM schema",
    ],
)
def test_rows_cannot_be_updated_or_deleted(store: ArchiveStore, sql: str) -> None:
    filled(store)
    before = (
        store.candidates(),
        store.evaluations(),
        store.llm_calls(),
        store.events(),
        store.config(),
    )
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._db.execute(sql)
    assert (
        store.candidates(),
        store.evaluations(),
        store.llm_calls(),
        store.events(),
        store.config(),
    ) == before


def test_insert_or_replace_cannot_overwrite_an_evaluation(store: ArchiveStore) -> None:
    ids = filled(store)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._db.execute(
            "INSERT OR REPLACE INTO evaluations (candidate_id, tier, status, tasks, seeds, "
            "learning_rates, task_versions, descriptors, config_hash, seconds, created_at) "
            "VALUES (?, 0, 'ok', '[]', 0, '[]', '{}', '{}', '', 0, 0)",
            (ids[0],),
        )


# -- writing -----------------------------------------------------------------------------------


def test_add_candidate_is_idempotent_and_the_first_record_wins(store: ArchiveStore) -> None:
    c = candidate(1)
    assert store.add_candidate(c) is True
    assert (
        store.add_candidate(dataclasses.replace(c, name="renamed"), llm_calls=[llm_call()]) is False
    )
    assert store.candidates() == [c]
    assert len(store.llm_calls()) == 1  # the repeated proposal's cost is still recorded


def test_add_candidate_rejects_an_id_that_is_not_the_source_hash(store: ArchiveStore) -> None:
    with pytest.raises(ValueError, match="not the hash of its source"):
        store.add_candidate(dataclasses.replace(candidate(1), id="0" * 64))


def test_parents_must_be_stored_before_their_children(store: ArchiveStore) -> None:
    parent = candidate(1)
    with pytest.raises(UnknownCandidateError, match="store parents before their children"):
        store.add_candidate(candidate(2, parents=(parent.id,)))
    assert store.candidates() == []  # the failed write left nothing behind
    store.add_candidate(parent)
    assert store.add_candidate(candidate(2, parents=(parent.id,)))


def test_a_second_evaluation_at_the_same_tier_raises(store: ArchiveStore) -> None:
    c = candidate(1)
    store.add_candidate(c)
    store.add_evaluation(evaluation(c.id, tier=1, score=1.0))
    with pytest.raises(DuplicateEvaluationError, match="never redone"):
        store.add_evaluation(evaluation(c.id, tier=1, score=2.0))
    store.add_evaluation(evaluation(c.id, tier=2, score=0.9))  # another tier is fine
    assert [e.score for e in store.evaluations(c.id)] == [1.0, 0.9]


def test_evaluations_and_llm_calls_must_refer_to_stored_candidates(store: ArchiveStore) -> None:
    with pytest.raises(UnknownCandidateError, match="store the candidate first"):
        store.add_evaluation(evaluation("f" * 64))
    with pytest.raises(UnknownCandidateError, match="store the candidate first"):
        store.add_llm_call(llm_call("f" * 64))
    store.add_llm_call(llm_call(None))  # a call that produced no candidate
    assert store.counts().llm_calls == 1


# -- reading -----------------------------------------------------------------------------------


def test_find_resolves_a_unique_prefix(store: ArchiveStore) -> None:
    ids = filled(store, 3)
    assert store.find(ids[1][:8]).id == ids[1]
    assert store.find(ids[1].upper()).id == ids[1]
    assert store.candidate(ids[2]) is not None and store.candidate("0" * 64) is None


def test_find_reports_ambiguous_and_unknown_prefixes(store: ArchiveStore) -> None:
    ids = filled(store, 40)  # 40 ids over 16 first hex digits: some first digit repeats
    first = [i[0] for i in ids]
    shared = next(d for d in first if first.count(d) > 1)
    with pytest.raises(AmbiguousIdError, match="give more characters"):
        store.find(shared)
    with pytest.raises(UnknownCandidateError, match="no candidate id starts with"):
        store.find("0" * 40)
    with pytest.raises(UnknownCandidateError, match="hexadecimal"):
        store.find("%")


def test_evaluations_filter_by_candidate_and_tier(store: ArchiveStore) -> None:
    ids = filled(store, 2)
    store.add_evaluation(evaluation(ids[0], tier=1))
    assert len(store.evaluations()) == 3
    assert [e.tier for e in store.evaluations(ids[0])] == [0, 1]
    assert [e.candidate_id for e in store.evaluations(tier=0)] == ids
    assert store.evaluations(ids[1], tier=1) == []


def test_pending_lists_the_evaluations_still_owed(store: ArchiveStore) -> None:
    new, passed, failed, screened, held_out = (candidate(i) for i in range(5))
    for c in (new, passed, failed, screened, held_out):
        store.add_candidate(c)
    for c in (passed, screened, held_out):
        store.add_evaluation(evaluation(c.id, tier=0))
    store.add_evaluation(evaluation(failed.id, tier=0, score=None, status="failed_tier0"))
    store.add_evaluation(evaluation(screened.id, tier=1, score=1.2))
    store.add_evaluation(evaluation(held_out.id, tier=1, score=1.3))
    store.add_evaluation(evaluation(held_out.id, tier=2, score=1.1))
    assert store.pending(0) == [new]
    assert store.pending(1) == [passed]
    assert store.pending(2) == [screened]
    with pytest.raises(ValueError, match="tier"):
        store.pending(3)


def test_by_fingerprint_finds_the_earliest_original_evaluation(store: ArchiveStore) -> None:
    a, b = candidate(1), candidate(2)
    store.add_candidate(a)
    store.add_candidate(b)
    store.add_evaluation(evaluation(a.id, tier=0, fingerprint="same"))
    store.add_evaluation(evaluation(a.id, tier=1, score=1.1, fingerprint="same"))
    store.add_evaluation(evaluation(b.id, tier=0, fingerprint="same"))
    store.add_evaluation(evaluation(b.id, tier=1, score=1.1, fingerprint="same", reused_from=a.id))
    found = store.by_fingerprint("same", tier=1)
    assert found is not None and found.candidate_id == a.id and found.score == 1.1
    assert store.by_fingerprint("same").tier == 0
    assert store.by_fingerprint("other") is None
    assert store.counts().deduplicated == 1


def test_counts_total_candidates_evaluations_statuses_and_llm_cost(store: ArchiveStore) -> None:
    ids = filled(store, 3)
    store.add_evaluation(evaluation(ids[0], tier=1, score=None, status="diverged"))
    store.add_llm_call(llm_call(None, cost=None, error="RateLimitError: 429"))
    store.add_llm_call(llm_call(None, cost=0.25))
    counts = store.counts()
    assert counts.candidates == 3
    assert counts.evaluations == {0: 3, 1: 1}
    assert counts.statuses == {0: {"ok": 3}, 1: {"diverged": 1}}
    assert (counts.llm_calls, counts.llm_errors) == (3, 1)
    assert counts.llm_cost_usd == pytest.approx(0.26)


def test_llm_calls_keep_prompt_reply_and_rejection_and_are_numbered(store: ArchiveStore) -> None:
    ids = filled(store, 2)  # call 1 belongs to ids[0]
    rejected = dataclasses.replace(
        llm_call(None), rejected="the reply has no code", prompt="[system]\nS\n\n[user]\nU",
        reply="I would add momentum.",
    )
    store.add_candidate(candidate(7), [rejected, dataclasses.replace(rejected, rejected=None)])
    store.add_llm_call(dataclasses.replace(llm_call(None), error="APITimeoutError", prompt="P"))
    seventh = candidate(7).id
    numbered = store.numbered_llm_calls()
    assert [seq for seq, _ in numbered] == [1, 2, 3, 4]
    assert [c.candidate_id for _, c in numbered] == [ids[0], seventh, seventh, None]
    assert numbered[1][1] == dataclasses.replace(rejected, candidate_id=seventh)  # all of it, back
    assert (numbered[3][1].prompt, numbered[3][1].reply) == ("P", None)
    assert [seq for seq, _ in store.numbered_llm_calls(candidate_id=seventh)] == [2, 3]
    assert [seq for seq, _ in store.numbered_llm_calls(last=2)] == [3, 4]  # the newest, in order
    assert store.llm_calls(candidate_id=seventh) == [c for _, c in numbered[1:3]]
    assert store.llm_call(2) == numbered[1][1] and store.llm_call(5) is None
    assert store.counts().llm_rejected == 1


def test_events_filter_by_kind(store: ArchiveStore) -> None:
    store.add_event(EventRecord("start", created_at=1.0))
    store.add_event(EventRecord("interrupted", {"signal": "SIGINT"}, created_at=2.0))
    assert [e.kind for e in store.events()] == ["start", "interrupted"]
    assert store.events("interrupted")[0].data == {"signal": "SIGINT"}


def test_a_reader_thread_and_a_writer_thread_share_the_store(store: ArchiveStore) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                counts = store.counts()
                assert counts.evaluations.get(0, 0) <= counts.candidates
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(100):
            c = candidate(i)
            store.add_candidate(c)
            store.add_evaluation(evaluation(c.id, tier=0))
    finally:
        done.set()
        reader.join()
    assert errors == []
    assert store.counts().candidates == 100


def test_a_second_process_style_connection_reads_while_the_store_is_open(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    with ArchiveStore.create(path, CONFIG) as writer:
        writer.add_candidate(candidate(1))
        with ArchiveStore.open(path) as reader:  # e.g. `optforge status` during a campaign
            assert len(reader.candidates()) == 1
            writer.add_candidate(candidate(2))
            assert len(reader.candidates()) == 2
