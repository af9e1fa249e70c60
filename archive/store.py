"""ArchiveStore: one append-only SQLite file per campaign, the system of record.

Crash safety: WAL journal, `synchronous=FULL`, and every write method is exactly one transaction
(BEGIN IMMEDIATE ... COMMIT), so a process killed at any moment (SIGKILL included) leaves a file
that opens with every committed row and none of a half-done write. Opening checks that the file is
an optforge archive, that its schema is not newer than this code, and runs `integrity_check`.

Threading: one connection, opened with `check_same_thread=False`, and a lock around every use of
it. The campaign thread writes while a display thread reads; reads are short, so serializing them
costs nothing that matters, and it keeps one connection's transactions from interleaving. Other
processes (e.g. `optforge status` while a campaign runs) open their own store: WAL lets them read
while the campaign writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from . import schema
from .errors import (
    AmbiguousIdError,
    ArchiveError,
    ArchiveExistsError,
    CorruptArchiveError,
    DuplicateEvaluationError,
    NewerSchemaError,
    NotAnArchiveError,
    UnknownCandidateError,
)
from .records import (
    TIERS,
    CandidateRecord,
    EvaluationRecord,
    EventRecord,
    LLMCallRecord,
    candidate_id,
)

_HEX = re.compile(r"[0-9a-f]+")
_BUSY_TIMEOUT_S = 30.0  # another process (e.g. `optforge status`) may hold a lock briefly


@dataclass(frozen=True)
class ArchiveCounts:
    candidates: int
    evaluations: dict[int, int]  # tier -> number of evaluations
    statuses: dict[int, dict[str, int]]  # tier -> status -> number
    deduplicated: int  # candidates whose evaluation was reused from a same-fingerprint candidate
    llm_calls: int
    llm_errors: int
    llm_cost_usd: float  # calls with an unknown price count as 0
    llm_rejected: int = 0  # calls whose reply the proposer could not use


class ArchiveStore:
    """One campaign's archive. Make one with `create` or `open`, never with the constructor."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._lock = threading.RLock()

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], config: Mapping[str, Any]) -> ArchiveStore:
        """Create a new archive holding a frozen JSON copy of `config`; never overwrites a file."""
        path = Path(path)
        if path.exists() or path.is_symlink():
            raise ArchiveExistsError(
                f"{path} already exists: refusing to overwrite it; resume with ArchiveStore.open "
                "(`optforge resume`) or choose a new path"
            )
        try:
            config_json = json.dumps(dict(config), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the campaign config must be JSON-serializable: {exc}") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        # Build under a temporary name and publish with a no-overwrite link: a crash mid-create
        # leaves no half-made archive at `path`, and a racing create cannot be clobbered.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.creating")
        leftovers = (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"))
        try:
            for leftover in leftovers:  # from a create killed earlier under the same pid
                leftover.unlink(missing_ok=True)
            db = _connect(tmp)
            try:
                db.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file header
                with _transaction(db):
                    schema.install(db, config_json, time.time())
            finally:
                db.close()
            _publish(tmp, path)
        finally:
            for leftover in leftovers:
                leftover.unlink(missing_ok=True)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ArchiveStore:
        """Open an existing archive, refusing anything that is not a sound, readable optforge one."""
        path = Path(path)
        if not path.is_file():
            raise NotAnArchiveError(f"no optforge archive at {path}: file not found")
        db: sqlite3.Connection | None = None
        try:
            db = _connect(path)
            _validate(db, path)
            db.execute("PRAGMA journal_mode=WAL")
            _migrate(db)
        except BaseException as exc:
            if db is not None:
                db.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise _classify(exc, path) from None
            raise
        return cls(path, db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ArchiveStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing: each method is one transaction -----------------------------------------------

    def add_candidate(
        self, record: CandidateRecord, llm_calls: Iterable[LLMCallRecord] = ()
    ) -> bool:
        """Store a candidate (and the LLM calls that produced it, in the same transaction).

        Idempotent: returns False, storing nothing new but the calls, when the id is already
        there (the first record wins). Parents must already be stored."""
        if record.id != candidate_id(record.source):
            raise ValueError(
                f"candidate id {record.id[:12]} is not the hash of its source: build records with "
                "CandidateRecord.new"
            )
        with self._write() as db:
            new = not _exists(db, "candidates", "id", record.id)
            if new:
                missing = [p for p in record.parent_ids if not _exists(db, "candidates", "id", p)]
                if missing:
                    raise UnknownCandidateError(
                        f"parent {missing[0][:12]} of candidate {record.id[:12]} is not in the "
                        "archive: store parents before their children"
                    )
                schema.insert(db, record)
            # Every call of the proposal belongs to the candidate, a rejected first reply that the
            # repair round fixed included (its `rejected` says why it was not used).
            for call in llm_calls:
                schema.insert(db, dataclasses.replace(call, candidate_id=record.id))
        return new

    def add_evaluation(self, record: EvaluationRecord) -> None:
        """Store one tier's evaluation; a second evaluation of the same (candidate, tier) raises."""
        with self._write() as db:
            for name, cid in (
                ("candidate", record.candidate_id),
                ("reused_from", record.reused_from),
            ):
                if cid is not None and not _exists(db, "candidates", "id", cid):
                    raise UnknownCandidateError(
                        f"evaluation refers to unknown {name} {cid[:12]}: store the candidate first"
                    )
            clash = db.execute(
                "SELECT 1 FROM evaluations WHERE candidate_id = ? AND tier = ?",
                (record.candidate_id, record.tier),
            ).fetchone()
            if clash:
                raise DuplicateEvaluationError(
                    f"candidate {record.candidate_id[:12]} already has a tier-{record.tier} "
                    "evaluation: the archive is append-only and evaluations are never redone"
                )
            schema.insert(db, record)

    def add_llm_call(self, record: LLMCallRecord) -> None:
        with self._write() as db:
            if record.candidate_id is not None and not _exists(
                db, "candidates", "id", record.candidate_id
            ):
                raise UnknownCandidateError(
                    f"LLM call refers to unknown candidate {record.candidate_id[:12]}: store the "
                    "candidate first, or pass its calls to add_candidate"
                )
            schema.insert(db, record)

    def add_event(self, record: EventRecord) -> None:
        with self._write() as db:
            schema.insert(db, record)

    # -- reading ------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The campaign config as stored at creation (a fresh copy: editing it changes nothing)."""
        row = self._rows("SELECT config FROM campaign WHERE id = 1")[0]
        config: dict[str, Any] = json.loads(row[0])
        return config

    def candidates(self) -> list[CandidateRecord]:
        """Every candidate, in the order stored."""
        return self._records(CandidateRecord, "ORDER BY seq")

    def candidate(self, id: str) -> CandidateRecord | None:
        found = self._records(CandidateRecord, "WHERE id = ?", (id,))
        return found[0] if found else None

    def find(self, prefix: str) -> CandidateRecord:
        """The one candidate whose id starts with `prefix` (a git-like short id)."""
        prefix = prefix.strip().lower()
        if not _HEX.fullmatch(prefix):
            raise UnknownCandidateError(f"{prefix!r} is not a candidate id (ids are hexadecimal)")
        # substr, not LIKE: a prefix match that is exact and independent of LIKE's case rules.
        found = self._records(
            CandidateRecord,
            "WHERE substr(id, 1, ?) = ? ORDER BY seq LIMIT 6",
            (len(prefix), prefix),
        )
        if not found:
            raise UnknownCandidateError(f"no candidate id starts with {prefix!r}")
        if len(found) > 1:
            shown = ", ".join(c.id[:12] for c in found[:5])
            raise AmbiguousIdError(
                f"{prefix!r} matches more than one candidate ({shown}{', ...' if len(found) > 5 else ''}): "
                "give more characters"
            )
        return found[0]

    def evaluations(
        self, candidate_id: str | None = None, tier: int | None = None
    ) -> list[EvaluationRecord]:
        """Evaluations in the order stored, optionally of one candidate and/or one tier."""
        where, params = _filters(candidate_id=candidate_id, tier=tier)
        return self._records(EvaluationRecord, where + " ORDER BY seq", params)

    def pending(self, tier: int = 0) -> list[CandidateRecord]:
        """Candidates that are due an evaluation at `tier`, in the order stored.

        Tier 0: candidates with no evaluation at all. Tier t > 0: candidates whose tier t-1
        evaluation passed (status "ok") and that have no evaluation at tier t or above. Tier 2 is
        for the top of tier 1 only: pending(2) lists the *eligible* ones and the campaign picks
        the fraction it owes. After a crash, pending(0) and pending(1) are exactly the work to redo."""
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
        lower = (
            ""
            if tier == 0
            else "AND EXISTS (SELECT 1 FROM evaluations l WHERE l.candidate_id = c.id "
            "AND l.tier = :lower AND l.status = 'ok')"
        )
        cols = ", ".join(f"c.{n}" for n in schema.columns(CandidateRecord))
        sql = (
            f"SELECT {cols} FROM candidates c WHERE NOT EXISTS (SELECT 1 FROM evaluations e "
            f"WHERE e.candidate_id = c.id AND e.tier >= :tier) {lower} ORDER BY c.seq"
        )
        return [
            schema.decode(CandidateRecord, r)
            for r in self._rows(sql, {"tier": tier, "lower": tier - 1})
        ]

    def by_fingerprint(self, fingerprint: str, tier: int | None = None) -> EvaluationRecord | None:
        """The earliest original (not itself reused) evaluation with this tier-0 fingerprint.

        With `tier`, only evaluations at that tier; without, any tier (use it to find the first
        candidate that behaved this way, then `evaluations(candidate_id=...)` for its results)."""
        where, params = _filters(fingerprint=fingerprint, tier=tier)
        found = self._records(
            EvaluationRecord, f"{where} AND reused_from IS NULL ORDER BY seq LIMIT 1", params
        )
        return found[0] if found else None

    def llm_calls(self, candidate_id: str | None = None) -> list[LLMCallRecord]:
        """LLM calls in the order made, optionally only those of one candidate."""
        where, params = _filters(candidate_id=candidate_id)
        return self._records(LLMCallRecord, where + " ORDER BY seq", params)

    def numbered_llm_calls(
        self, candidate_id: str | None = None, last: int | None = None
    ) -> list[tuple[int, LLMCallRecord]]:
        """(seq, call) in the order made: the number `llm_call` takes. Optionally only one
        candidate's calls, and only the `last` N of them (still oldest first)."""
        where, params = _filters(candidate_id=candidate_id)
        limit = "" if last is None else f" LIMIT {max(int(last), 0)}"
        cols = ", ".join(schema.columns(LLMCallRecord))
        # The newest N, read newest first, then put back in order.
        rows = self._rows(
            f"SELECT seq, {cols} FROM llm_calls {where} ORDER BY seq DESC{limit}", params
        )
        return [(int(r[0]), schema.decode(LLMCallRecord, r[1:])) for r in reversed(rows)]

    def llm_call(self, seq: int) -> LLMCallRecord | None:
        """The call numbered `seq` (see `numbered_llm_calls`); None when there is none."""
        found = self._records(LLMCallRecord, "WHERE seq = ?", (seq,))
        return found[0] if found else None

    def events(self, kind: str | None = None) -> list[EventRecord]:
        where, params = _filters(kind=kind)
        return self._records(EventRecord, where + " ORDER BY seq", params)

    def counts(self) -> ArchiveCounts:
        """Totals for a status display and for budgets that must count work done before a resume."""
        with self._snapshot() as db:
            (n_candidates,) = db.execute("SELECT count(*) FROM candidates").fetchone()
            per_status = db.execute(
                "SELECT tier, status, count(*) FROM evaluations GROUP BY tier, status"
            )
            statuses: dict[int, dict[str, int]] = {}
            for tier, status, n in per_status:
                statuses.setdefault(tier, {})[status] = n
            (deduplicated,) = db.execute(
                "SELECT count(DISTINCT candidate_id) FROM evaluations WHERE reused_from IS NOT NULL"
            ).fetchone()
            calls, errors, cost, rejected = db.execute(
                "SELECT count(*), count(error), total(cost_usd), count(rejected) FROM llm_calls"
            ).fetchone()
        evaluations = {t: sum(s.values()) for t, s in statuses.items()}
        return ArchiveCounts(
            n_candidates, evaluations, statuses, deduplicated, calls, errors, cost, rejected
        )

    # -- plumbing -----------------------------------------------------------------------------

    def _records(self, cls: type[Any], suffix: str, params: Any = ()) -> list[Any]:
        return [
            schema.decode(cls, row) for row in self._rows(f"{schema.select(cls)} {suffix}", params)
        ]

    def _rows(self, sql: str, params: Any = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _transaction(self._db, "BEGIN IMMEDIATE"):
            yield self._db

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads that see one consistent state of the file (a read transaction)."""
        with self._lock, _transaction(self._db, "BEGIN"):
            yield self._db


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; the store issues BEGIN/COMMIT itself.
    db = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA recursive_triggers = ON")  # so INSERT OR REPLACE's delete hits the trigger
    # FULL: a committed write survives power loss too, not only a killed process.
    db.execute("PRAGMA synchronous = FULL")
    return db


@contextmanager
def _transaction(db: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    db.execute(begin)
    try:
        yield
    except BaseException:
        if db.in_transaction:  # some errors (disk full, I/O) have already rolled it back
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _publish(tmp: Path, path: Path) -> None:
    """Move the finished archive `tmp` to `path` unless something appeared there meanwhile."""
    try:
        os.link(tmp, path)  # fails if `path` exists: no overwrite, even in a race
    except FileExistsError:
        raise ArchiveExistsError(f"{path} already exists: refusing to overwrite it") from None
    except OSError:  # a filesystem without hard links: re-check, then rename
        if path.exists():
            raise ArchiveExistsError(f"{path} already exists: refusing to overwrite it") from None
        os.replace(tmp, path)


def _validate(db: sqlite3.Connection, path: Path) -> None:
    """Raise unless `path` is an optforge archive this code can read and that passes its check."""
    has_schema = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema'"
    ).fetchone()
    row = schema.current_version(db) if has_schema else None
    if row is None or row[0] != schema.APPLICATION:
        raise NotAnArchiveError(f"{path} is an SQLite database but not an optforge archive")
    version = row[1]
    if version > schema.SCHEMA_VERSION:
        raise NewerSchemaError(
            f"{path} has archive schema version {version}, newer than this optforge reads "
            f"({schema.SCHEMA_VERSION}): upgrade optforge"
        )
    if version < 1:
        raise CorruptArchiveError(f"{path} has an unknown archive schema version {version!r}")
    problems = [r[0] for r in db.execute("PRAGMA integrity_check(5)")]
    if problems != ["ok"]:
        detail = "; ".join(" ".join(p.split()) for p in problems[:2])  # one line, two problems
        raise CorruptArchiveError(f"{path} is corrupt (SQLite integrity_check: {detail})")


def _migrate(db: sqlite3.Connection) -> None:
    """Bring an older file up to this schema; re-read under the write lock, so two processes
    opening the same old file migrate it once."""
    if schema.current_version(db) == (schema.APPLICATION, schema.SCHEMA_VERSION):
        return
    with _transaction(db):
        found = schema.current_version(db)
        if found is not None and found[1] < schema.SCHEMA_VERSION:
            schema.migrate(db, found[1])


def _classify(exc: sqlite3.DatabaseError, path: Path) -> ArchiveError:
    message = str(exc)
    if "file is not a database" in message:
        return NotAnArchiveError(f"{path} is not an optforge archive (SQLite: {message})")
    if "locked" in message or "busy" in message:
        return ArchiveError(f"{path} is locked by another process: {message}; try again")
    return CorruptArchiveError(f"{path} is corrupt (SQLite: {message})")


def _exists(db: sqlite3.Connection, table: str, column: str, value: Any) -> bool:
    return db.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", (value,)).fetchone() is not None


def _filters(**conditions: Any) -> tuple[str, dict[str, Any]]:
    """A `WHERE` clause matching every condition that is not None (`WHERE 1` when none is)."""
    given = {k: v for k, v in conditions.items() if v is not None}
    clause = " AND ".join(f"{k} = :{k}" for k in given) or "1"
    return f"WHERE {clause}", given
