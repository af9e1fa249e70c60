"""Bundled baseline candidates (SGD, Adam, AdamW, Lion, ...; losses; schedules).

Each baseline is a plain candidate source file in the same contract a proposer must meet, so the
files double as worked examples: `optimizers/adamw.py`, `losses/focal.py`, `schedules/wsd.py`, ...
They ship as package data and are read as text (never imported as modules), then loaded through
`load_candidate`, exactly like a proposed candidate.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from ..contracts import Candidate, load_candidate
from ..kinds import kind_spec

if TYPE_CHECKING:  # importlib.resources.abc is 3.11+; annotations only, so 3.10 still imports
    from importlib.resources.abc import Traversable


def _folder(kind: str) -> Traversable:
    """The subpackage holding `kind`'s baseline files (KindSpec.baselines)."""
    return resources.files(f"{__name__}.{kind_spec(kind).baselines}")


def baseline_names(kind: str) -> list[str]:
    """Names of the bundled baselines of `kind`, sorted (e.g. ['adagrad', 'adam', ...])."""
    return sorted(
        entry.name[: -len(".py")]
        for entry in _folder(kind).iterdir()
        if entry.name.endswith(".py") and entry.name != "__init__.py"
    )


def baseline_source(kind: str, name: str) -> str:
    """The source text of baseline `name` of `kind`."""
    names = baseline_names(kind)
    if name not in names:
        raise ValueError(f"no {kind} baseline named {name!r}: choose one of {', '.join(names)}")
    return (_folder(kind) / f"{name}.py").read_text(encoding="utf-8")


def load_baseline(kind: str, name: str) -> Candidate:
    """Check and load baseline `name` of `kind` as a Candidate (named after the baseline)."""
    return load_candidate(baseline_source(kind, name), kind, name)


__all__ = ["baseline_names", "baseline_source", "load_baseline"]
