"""Wall-clock limits that fit each job's work.

A flat limit (600 s, as optforge had) lets a candidate whose `update` never returns hold a worker for
10 minutes at tier 0, where a job takes 30-500 ms. Instead: tier-0 jobs get a short fixed limit, and
a training job gets a multiple of what the tuned AdamW reference paid for the same work on the same
task, measured when its sweep ran (and cached with it), scaled by the job's members (seeds x
learning rates) and by how much less batched the job is. The user can still set one limit for all.
"""

from __future__ import annotations

from dataclasses import dataclass

from optforge.agent.config import SandboxConfig
from optforge.agent.evaluation.sweeps import SweepOutcome
from optforge.sandbox import Limits
from optforge.tasks.proxy import ProxyTask

# Cost of one member relative to the fully batched mode, the worst over the tier-1 tasks (AdamW,
# 8 seeds, 2-core machine: benchmarks/README.md, "Batching modes"): the loop pays every op's
# per-call overhead once per member, which dominates on tiny models.
MODE_COST = {"vmap_lr": 1.0, "vmap": 6.0, "loop": 30.0}
# The reference's own sweep, when it is not cached yet, has nothing to scale from. It is trusted
# code, so this limit only guards against a broken machine.
UNMEASURED_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class JobTimeouts:
    config: SandboxConfig
    reference: dict[str, SweepOutcome]  # task name -> the reference's sweep on it (its cost)

    def tier0(self) -> Limits:
        return self._limits(self.config.job_timeout_s or self.config.tier0_timeout_s)

    def train(self, task: ProxyTask, members: int, batching: str) -> Limits:
        if self.config.job_timeout_s is not None:
            return self._limits(self.config.job_timeout_s)
        ref = self.reference.get(task.name)
        if ref is None or ref.members == 0 or ref.seconds <= 0:
            return self._limits(UNMEASURED_TIMEOUT_S)
        expected = ref.seconds / ref.members * members * MODE_COST[batching]
        return self._limits(max(self.config.min_job_timeout_s, self.config.timeout_multiple * expected))

    def _limits(self, seconds: float) -> Limits:
        return Limits(wall_seconds=seconds, memory_mb=self.config.memory_mb)
