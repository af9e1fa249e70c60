"""The archive's SQLite schema and the mapping between records and rows.

Version history (bump SCHEMA_VERSION with every change and teach `ArchiveStore.open` to read the old
one; a file with a higher version than this is refused, never "repaired"):
  1: schema, campaign, candidates, evaluations, llm_calls, events; append-only triggers.
  2: evaluations.environment (JSON: the sandbox backend, and for Docker the image and its digest).
     A version-1 file is migrated when opened: the column is added (existing rows get {}), and a
     version-2 row is appended to `schema` (append-only: the current version is the highest row).
  3: evaluations.batching and evaluations.batching_note (how members were batched under vmap, and
     why not more); older rows keep batch_safe and have NULL in both.
  4: llm_calls.prompt (the request's whole conversation as one text), llm_calls.reply (the reply's
     text; NULL when the request failed) and llm_calls.rejected (NULL, or the one-line reason the
     proposer could not use the reply). Older rows have NULL in all three: nothing was kept.

Every table is append-only: BEFORE UPDATE / BEFORE DELETE triggers abort. With `recursive_triggers`
on (set by the store) this also covers the deletes that INSERT OR REPLACE performs.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import fields
from typing import Any, TypeVar

from .records import CandidateRecord, EvaluationRecord, EventRecord, LLMCallRecord

SCHEMA_VERSION = 4
APPLICATION = "optforge-archive"  # tells an optforge archive from any other SQLite file

TABLES = {
    CandidateRecord: "candidates",
    EvaluationRecord: "evaluations",
    LLMCallRecord: "llm_calls",
    EventRecord: "events",
}

# Fields stored as JSON text; everything else maps to an SQLite column of the same name.
_JSON_FIELDS = frozenset(
    {"parent_ids", "score_ci", "tasks", "learning_rates", "task_versions", "descriptors", "data",
     "environment"}
)

_DDL = """
CREATE TABLE schema (
    application TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE campaign (
    id INTEGER PRIMARY KEY CHECK (id = 1),  -- exactly one campaign per file
    config TEXT NOT NULL,                   -- frozen JSON copy of the campaign config
    created_at REAL NOT NULL
);
CREATE TABLE candidates (
    seq INTEGER PRIMARY KEY,                -- insertion order
    id TEXT NOT NULL UNIQUE,                -- sha256 of the normalized source
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    parent_ids TEXT NOT NULL,               -- JSON list of candidate ids
    island INTEGER NOT NULL CHECK (island >= 0),
    generation INTEGER NOT NULL CHECK (generation >= 0),
    proposer TEXT NOT NULL,
    thought TEXT,
    prompt TEXT,
    reply TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE evaluations (
    seq INTEGER PRIMARY KEY,
    candidate_id TEXT NOT NULL REFERENCES candidates (id),
    tier INTEGER NOT NULL CHECK (tier IN (0, 1, 2)),
    status TEXT NOT NULL,
    score REAL,
    score_ci TEXT,                          -- JSON [lo, hi] or NULL
    error TEXT,
    tasks TEXT NOT NULL,                    -- JSON list of per-task dicts
    fingerprint TEXT,
    batch_safe INTEGER,                     -- schema 1-2 only; later rows have batching
    seeds INTEGER NOT NULL,
    learning_rates TEXT NOT NULL,
    task_versions TEXT NOT NULL,
    descriptors TEXT NOT NULL,
    code_commit TEXT,
    config_hash TEXT NOT NULL,
    environment TEXT NOT NULL DEFAULT '{}', -- JSON: where it ran (sandbox backend, image digest)
    batching TEXT,                          -- "vmap_lr", "vmap" or "loop"
    batching_note TEXT,                     -- why not more batched: vmap's first error line
    reused_from TEXT REFERENCES candidates (id),
    seconds REAL NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (candidate_id, tier)             -- an evaluation is never redone
);
CREATE INDEX evaluations_by_fingerprint ON evaluations (fingerprint, tier);
CREATE TABLE llm_calls (
    seq INTEGER PRIMARY KEY,
    candidate_id TEXT REFERENCES candidates (id),
    model TEXT NOT NULL,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    cost_usd REAL,
    latency_s REAL NOT NULL,
    error TEXT,
    rejected TEXT,                          -- why the proposer could not use the reply (one line)
    prompt TEXT,                            -- the whole request: the conversation as one text
    reply TEXT,                             -- the reply's text; NULL when the request failed
    created_at REAL NOT NULL
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

_APPEND_ONLY = """
CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'the optforge archive is append-only: {table} rows are never updated'); END;
CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, 'the optforge archive is append-only: {table} rows are never deleted'); END;
"""

ALL_TABLES = ("schema", "campaign", *TABLES.values())


def install(db: sqlite3.Connection, config_json: str, created_at: float) -> None:
    """Create every table, the triggers and the first rows, inside the caller's transaction."""
    statements = _DDL + "".join(_APPEND_ONLY.format(table=t) for t in ALL_TABLES)
    # executescript would COMMIT the caller's transaction first; split and run one by one instead.
    for statement in _split(statements):
        db.execute(statement)
    db.execute(
        "INSERT INTO schema (application, version) VALUES (?, ?)", (APPLICATION, SCHEMA_VERSION)
    )
    db.execute(
        "INSERT INTO campaign (id, config, created_at) VALUES (1, ?, ?)", (config_json, created_at)
    )


# Each step takes a file from version N to N + 1 inside the caller's write transaction.
_MIGRATIONS = {
    1: ("ALTER TABLE evaluations ADD COLUMN environment TEXT NOT NULL DEFAULT '{}'",),
    2: ("ALTER TABLE evaluations ADD COLUMN batching TEXT",
        "ALTER TABLE evaluations ADD COLUMN batching_note TEXT"),
    3: ("ALTER TABLE llm_calls ADD COLUMN rejected TEXT",
        "ALTER TABLE llm_calls ADD COLUMN prompt TEXT",
        "ALTER TABLE llm_calls ADD COLUMN reply TEXT"),
}


def current_version(db: sqlite3.Connection) -> tuple[str, int] | None:
    """(application, version) of the file: its highest schema row; None if it has none."""
    row = db.execute("SELECT application, MAX(version) FROM schema").fetchone()
    return None if row is None or row[0] is None else (row[0], int(row[1]))


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a file at `version` to SCHEMA_VERSION (the caller holds a write transaction)."""
    while version < SCHEMA_VERSION:
        for statement in _MIGRATIONS[version]:
            db.execute(statement)
        version += 1
        db.execute("INSERT INTO schema (application, version) VALUES (?, ?)", (APPLICATION, version))


def _split(script: str) -> list[str]:
    """Statements of `script`; a trigger body's inner `;` is kept with its trigger."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    return [s for s in out if s]


def columns(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def insert(db: sqlite3.Connection, record: Any) -> None:
    """Insert one record into its table (the caller holds the transaction)."""
    table, names = TABLES[type(record)], columns(type(record))
    values = {n: _encode(n, getattr(record, n)) for n in names}
    placeholders = ", ".join(f":{n}" for n in names)
    db.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})", values)


def select(cls: type) -> str:
    """`SELECT <record fields> FROM <table>`, ready for a WHERE / ORDER BY suffix."""
    return f"SELECT {', '.join(columns(cls))} FROM {TABLES[cls]}"


R = TypeVar("R")


def decode(cls: type[R], row: sqlite3.Row | tuple[Any, ...]) -> R:
    values = {n: _decode(n, v) for n, v in zip(columns(cls), row, strict=True)}
    return cls(**values)


def _encode(name: str, value: Any) -> Any:
    if name == "tasks":  # typed task results (records.TaskResult), stored as JSON objects
        return json.dumps([dataclasses.asdict(task) for task in value])
    if name in _JSON_FIELDS and value is not None:
        return json.dumps(value)
    return value


def _decode(name: str, value: Any) -> Any:
    if name in _JSON_FIELDS and value is not None:
        return json.loads(value)
    if name == "batch_safe" and value is not None:
        return bool(value)  # SQLite has no boolean type: stored as 0/1
    return value
