"""Exceptions and warnings for *our* misconfiguration (a candidate's failure is a RunResult status)."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """The sandbox itself cannot do its job (worker failed to start, runner closed, bad setup)."""


class SandboxUnavailable(SandboxError):
    """What the user asked for cannot run here: the requested isolation (bubblewrap), the Docker
    engine or image, or the Ray cluster (unreachable, too small, a node on other optforge code)."""


class UnisolatedSandboxWarning(UserWarning):
    """Candidate code runs without network/filesystem isolation (no bubblewrap)."""
