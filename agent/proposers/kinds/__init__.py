"""The proposers' half of each kind plug-in (spec.py), one module per kind; the trusted half is
optforge.tasks.kinds. `proposal_kind(kind)` refuses an unknown kind in one line (UnknownKind)."""

from __future__ import annotations

import functools

from optforge.agent.proposers.kinds.spec import ProposalKind
from optforge.tasks.kinds import KINDS, UnknownKind

__all__ = ["ProposalKind", "all_proposal_kinds", "proposal_kind"]


def proposal_kind(kind: str) -> ProposalKind:
    """The proposers' spec of `kind`; UnknownKind (one line naming the kinds) for any other name."""
    registry = _registry()
    if kind not in registry:
        raise UnknownKind(kind)
    return registry[kind]


def all_proposal_kinds() -> list[ProposalKind]:
    return list(_registry().values())


@functools.cache
def _registry() -> dict[str, ProposalKind]:
    # Imported on first use: the kind modules build on the grammar, crossover and mutation code,
    # which look kinds up here.
    from optforge.agent.proposers.kinds import (
        loss,
        optimizer,
        preference_loss,
        scaling_rule,
        schedule,
    )

    modules = (optimizer, loss, schedule, preference_loss, scaling_rule)
    specs = {module.SPEC.name: module.SPEC for module in modules}
    if tuple(specs) != KINDS:
        raise RuntimeError(f"agent kind modules define {tuple(specs)}, tasks declares {KINDS}")
    return specs
