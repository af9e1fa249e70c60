"""Typed configuration (pydantic, frozen, unknown keys are errors) and the one place that reads the
environment. No field exists before something uses it."""

from __future__ import annotations

import os
import pathlib

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SweepConfig(_Frozen):
    """Learning-rate sweep: `points` values spaced by `factor` around a default, centre included.

    Every candidate and every baseline gets the same sweep around its own default (equal tuning,
    as AlgoPerf and "Fantastic Pretraining Optimizers" insist); both then take their best.
    Default: 7 points x4 apart, i.e. default * 4**[-3..3] (1/64 to 64, 3.6 decades). Measured on
    tier 1: with 5 points (1/16 to 16) tuned AdamW's best learning rate sat on the top edge of the
    grid on 3 of 5 tasks, and Lion's and SGD's on theirs, so the "tuned" baselines were not tuned.
    """

    points: int = Field(7, ge=1, le=15)
    factor: float = Field(4.0, gt=1.0)

    def learning_rates(self, center: float) -> list[float]:
        half = (self.points - 1) / 2
        return [center * self.factor ** (i - half) for i in range(self.points)]


class SandboxConfig(_Frozen):
    backend: str = Field("process", pattern="^process$")
    workers: int | None = Field(None, ge=1, description="default: one per CPU core")
    allow_unisolated: bool = False  # run without bubblewrap: no network or filesystem isolation
    job_timeout_s: float = Field(600.0, gt=0)
    memory_mb: int = Field(4096, ge=256)


class EvaluationConfig(_Frozen):
    seeds: dict[int, int] = Field(
        default_factory=lambda: {1: 8, 2: 4}, description="seeds per tier"
    )
    sweep: SweepConfig = SweepConfig()
    sandbox: SandboxConfig = SandboxConfig()

    def seeds_for(self, tier: int) -> int:
        return self.seeds.get(tier, 1)


def cache_dir() -> pathlib.Path:
    """Where baseline sweeps are cached: $OPTFORGE_CACHE_DIR, else $XDG_CACHE_HOME/optforge."""
    explicit = os.environ.get("OPTFORGE_CACHE_DIR")
    if explicit:
        return pathlib.Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base) / "optforge"
