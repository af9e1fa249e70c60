"""Cache of the AdamW reference sweeps, keyed by task version and machine-independent config.

A reference sweep depends only on the task (its full version string), the reference's source, the
metric, the seeds, the learning rates and the device type (CPU or CUDA: their floating-point
results differ); not on the machine, the number of workers, the sandbox backend or the executor, so
a cache entry is valid wherever it was computed on the same device type.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile

from optforge.agent.config import SweepConfig
from optforge.agent.evaluation.sweeps import (
    JobLimits,
    SweepOutcome,
    SweepSpec,
    run_sweeps,
    runner_device,
)
from optforge.sandbox import Runner
from optforge.tasks.baselines import baseline_source
from optforge.tasks.contracts import declared_hparams
from optforge.tasks.kinds import kind_spec
from optforge.tasks.proxy import ProxyTask
from optforge.tasks.scoring import heldout_metric_name


class BaselineCache:
    def __init__(self, directory: pathlib.Path):
        self.directory = directory

    def sweeps(
        self, tasks: list[ProxyTask], kind: str, seeds: list[int], sweep: SweepConfig, runner: Runner, limits: JobLimits
    ) -> dict[str, SweepOutcome]:
        """The sweep of `kind`'s reference (tuned AdamW for every kind so far) on every task, from
        the cache or computed (all missing ones at once)."""
        reference_kind, reference = kind_spec(kind).reference
        source = baseline_source(reference_kind, reference)
        center = declared_hparams(source)["lr"]
        device = runner_device(runner)
        found: dict[str, SweepOutcome] = {}
        missing: list[ProxyTask] = []
        for task in tasks:
            cached = self._load(self._key(task, kind, source, seeds, sweep, device))
            if cached is None:
                missing.append(task)
            else:
                found[task.name] = cached
        specs = [SweepSpec(task, kind, source, reference_kind, center, seeds, "vmap_lr", device)
                 for task in missing]
        for task, outcome in zip(missing, run_sweeps(specs, sweep, runner, limits), strict=True):
            if outcome.best() is not None:  # never cache a failure: it may be transient (timeout)
                self._save(self._key(task, kind, source, seeds, sweep, device), outcome)
            found[task.name] = outcome
        return found

    def _key(
        self, task: ProxyTask, kind: str, source: str, seeds: list[int], sweep: SweepConfig,
        device: str,
    ) -> str:
        fields: dict[str, object] = {
            "task": task.full_version(),
            "reference": hashlib.sha256(source.encode()).hexdigest(),
            "metric": heldout_metric_name(task, kind),
            "seeds": seeds,
            "sweep": sweep.model_dump(),
        }
        if device != "cpu":  # a GPU's numbers differ from a CPU's; CPU keys stay as they were
            fields["device"] = device
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]

    def load_json(self, key: str) -> dict | None:
        """A cached entry of another shape (the preference task's DPO runs), by its key; None when
        absent or unreadable."""
        try:
            value = json.loads(self._path(key).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def save_json(self, key: str, value: dict) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(value, handle)
        os.replace(tmp, path)  # atomic: concurrent evaluations never read half a file

    def _path(self, key: str) -> pathlib.Path:
        return self.directory / "baselines" / f"{key}.json"

    def _load(self, key: str) -> SweepOutcome | None:
        data = self.load_json(key)
        try:
            return None if data is None else SweepOutcome.from_json(data)
        except (ValueError, KeyError, TypeError):  # a corrupt entry is recomputed, never trusted
            return None

    def _save(self, key: str, outcome: SweepOutcome) -> None:
        self.save_json(key, outcome.to_json())
