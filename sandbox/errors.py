"""Exceptions and warnings for *our* misconfiguration (a candidate's failure is a RunResult status)."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """The sandbox itself cannot do its job (worker failed to start, runner closed, bad setup)."""


class SandboxUnavailable(SandboxError):
    """The requested isolation (bubblewrap) is not available on this machine."""


class UnisolatedSandboxWarning(UserWarning):
    """Candidate code runs without network/filesystem isolation (no bubblewrap)."""
