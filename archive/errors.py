"""Errors the archive raises: each message is one line that says what is wrong and what to do."""

from __future__ import annotations


class ArchiveError(Exception):
    """Base class of every archive error."""


class ArchiveExistsError(ArchiveError, FileExistsError):
    """`ArchiveStore.create` was pointed at a path that already exists."""


class NotAnArchiveError(ArchiveError):
    """The file is missing, or is not an optforge archive (not SQLite, or no optforge schema)."""


class CorruptArchiveError(ArchiveError):
    """The file is an SQLite database that fails its integrity check or cannot be read."""


class NewerSchemaError(ArchiveError):
    """The archive was written by a newer optforge with a schema this version does not know."""


class UnknownCandidateError(ArchiveError, LookupError):
    """No candidate has this id (or id prefix)."""


class AmbiguousIdError(ArchiveError, LookupError):
    """An id prefix matches more than one candidate."""


class DuplicateEvaluationError(ArchiveError):
    """A candidate already has an evaluation at this tier; evaluations are never redone."""
