"""Tier 0: conformance in well under a second, cheapest check first, plus a behaviour fingerprint.

Each kind's checks live in its module (tasks/kinds/<kind>.py, `KindSpec.tier0`); this module runs
them and holds what they share: the report, fixed probe tensors, comparison and the fingerprint.

The fingerprint hashes a candidate's outputs on fixed inputs, rounded to 4 significant digits, so two
candidates that compute the same thing (up to float reassociation) are recognised as one (the Lion
program search deduplicated its 10^5 candidates the same way).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

from .contracts import Candidate
from .kinds import kind_spec

SEED_STACK = 3  # members stacked for the batching checks


@dataclass
class Tier0Report:
    passed: bool = True
    batching: str = "loop"  # how training may batch its members (vectorized.py): decided here
    batching_note: str | None = None  # why not a more batched mode: the first error line
    fingerprint: str = ""
    state_tensors: int = 0  # tensors `init` returns per parameter: an optimizer's memory descriptor
    checks: list[dict] = field(default_factory=list)
    error: str | None = None  # first failing check, one line

    def record(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append({"name": name, "ok": ok, "detail": detail})
        if not ok and self.passed:
            self.passed, self.error = False, f"{name}: {detail}"
        return ok


def run_tier0(candidate: Candidate) -> Tier0Report:
    """All tier-0 checks for the candidate's kind; stops at the first failure."""
    report = Tier0Report()
    checks = kind_spec(candidate.kind).tier0
    try:
        checks(candidate, report)
    except Exception as exc:  # a candidate's exception is a failed check, not our crash
        report.record("runs", False, f"{type(exc).__name__}: {exc}")
    return report


def fixed(shape: tuple[int, ...], salt: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1000 + salt)
    return torch.randn(shape, generator=gen)


def record_batching(report: Tier0Report, batching: str, note: str | None) -> None:
    report.batching, report.batching_note = batching, note
    report.record("batching", True, batching if note is None else f"{batching} ({note})")


_QUAD_DIAG = torch.logspace(0, 3, 10)  # condition number 1e3


def quadratic(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (_QUAD_DIAG * x * x).sum()


def same(a: list[torch.Tensor], b: list[torch.Tensor], tol: float = 0.0) -> bool:
    return len(a) == len(b) and all(
        torch.allclose(x, y, rtol=tol, atol=tol, equal_nan=True) for x, y in zip(a, b, strict=True)
    )


def digest(tensors: list[torch.Tensor]) -> str:
    """The behaviour fingerprint of some outputs: shapes and values to 4 significant digits."""
    hashed = hashlib.sha256()
    for t in tensors:
        hashed.update(str(tuple(t.shape)).encode())
        hashed.update(" ".join(f"{v:.4g}" for v in t.double().flatten().tolist()).encode())
    return hashed.hexdigest()[:16]
