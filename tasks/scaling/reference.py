"""The scaling task's reference: the per-width tuned optimum L*(width, seed), computed once by
sweep.py and shipped as data/reference.json, frozen.

Frozen because merging candidates' off-grid runs into it would let L* drift down through the
winner's curse (the spec measured it): the reference is the best *3-seed mean* over a fixed grid,
and only cells with all three seeds can be the best.

Also the base values every rule starts from: one learning rate and weight decay tuned at the base
width (32) for all groups together; the vector group (LayerNorms, biases) never gets weight decay.
"""

from __future__ import annotations

import functools
import hashlib
import json
import pathlib
from dataclasses import dataclass
from typing import Any

from ..adapters import SCALING_GROUPS

REFERENCE_FILE = pathlib.Path(__file__).parent / "data" / "reference.json"
REFERENCE_SEEDS = (0, 1, 2)


class ReferenceMissing(RuntimeError):
    """No reference for a width: one line naming the command that computes it."""


@dataclass(frozen=True)
class WidthReference:
    width: int
    lr: float  # the best cell's hidden/output learning rate
    weight_decay: float  # and weight decay
    losses: dict[int, float]  # seed -> held-out loss of the best cell
    seconds_per_run: float  # mean wall time of one run at this width (what timeouts scale with)


@dataclass(frozen=True)
class Reference:
    base_width: int
    base_lr: float
    base_weight_decay: float
    widths: dict[int, WidthReference]
    digest: str  # of the file: part of every scaling task's version
    data: dict[str, Any]

    def base(self) -> dict[str, dict[str, float]]:
        """The base values a rule scales, per group."""
        values = {"lr": self.base_lr, "weight_decay": self.base_weight_decay}
        return {g: dict(values, weight_decay=0.0) if g == "vector" else dict(values) for g in SCALING_GROUPS}

    def at(self, width: int) -> WidthReference:
        if width not in self.widths:
            raise ReferenceMissing(f"the scaling reference has no width {width} (it has {sorted(self.widths)}): "
                                   "compute it with `python -m optforge.tasks.scaling.sweep`")
        return self.widths[width]


def parse(text: str) -> Reference:
    data = json.loads(text)
    widths = {}
    for key, entry in data["widths"].items():
        best = entry["best"]
        widths[int(key)] = WidthReference(int(key), float(best["lr"]), float(best["weight_decay"]),
                                          {int(s): float(v) for s, v in best["losses"].items()},
                                          float(entry["seconds_per_run"]))
    base = data["base"]
    return Reference(int(data["base_width"]), float(base["lr"]), float(base["weight_decay"]), widths,
                     hashlib.sha256(text.encode()).hexdigest()[:16], data)


@functools.cache
def load() -> Reference:
    if not REFERENCE_FILE.exists():
        raise ReferenceMissing(f"{REFERENCE_FILE} is missing: compute it with `python -m optforge.tasks.scaling.sweep`")
    return parse(REFERENCE_FILE.read_text())
