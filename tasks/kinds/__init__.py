"""Candidate kinds as plug-ins: one module per kind, each defining a `KindSpec` (spec.py).

Shared code asks `kind_spec(kind)` instead of branching on a kind's name, and an unknown kind is
one line (`UnknownKind`) wherever it is looked up. To add a kind, see the README, "Adding a kind".

    optimizer.py   a per-tensor update rule (init, update; HPARAMS)
    loss.py        a classification loss, trained with the reference optimizer
    schedule.py    a learning-rate multiplier, applied to the reference optimizer
    preference_loss.py  a DPO-style objective, scored on the preference task (tasks/preference/)
    scaling_rule.py     per-group AdamW lr and weight decay as a function of width (tasks/scaling/)
"""

from __future__ import annotations

import functools

from ..contracts import KINDS, Kind, UnknownKind, contract
from .spec import ExportSpec, KindSpec, SweepPlan

__all__ = ["KINDS", "ExportSpec", "Kind", "KindSpec", "SweepPlan", "UnknownKind", "all_specs", "kind_spec", "reference_label"]


def kind_spec(kind: str) -> KindSpec:
    """The spec of `kind`; raises UnknownKind (one line naming the kinds) for any other name."""
    contract(kind)  # the one place an unknown name is refused
    return _registry()[kind]


def reference_label(kind: str) -> str:
    """What displays call `kind`'s reference ("tuned AdamW", "DPO"); archives of a kind this
    version does not know were scored against tuned AdamW."""
    return kind_spec(kind).reference_label if kind in KINDS else "tuned AdamW"


def all_specs() -> list[KindSpec]:
    """Every kind's spec, in the order of KINDS."""
    return list(_registry().values())


@functools.cache
def _registry() -> dict[str, KindSpec]:
    # Imported on first use, not at the top: the kind modules build on tier0, training, proxy and
    # the baselines, which look kinds up here; importing them eagerly would make a circle.
    from . import loss, optimizer, preference_loss, scaling_rule, schedule

    specs = {spec.name: spec for spec in (optimizer.SPEC, loss.SPEC, schedule.SPEC, preference_loss.SPEC, scaling_rule.SPEC)}
    if tuple(specs) != KINDS:
        raise RuntimeError(f"kind modules define {tuple(specs)}, contracts.py declares {KINDS}")
    return specs
