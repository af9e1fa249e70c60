"""What a campaign runs on, injected so tests can use fakes (DESIGN.md, principle 3)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from optforge.agent.campaign.progress import Progress
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.proposers.base import Proposer
from optforge.sandbox import Runner


@dataclass(frozen=True)
class CampaignParts:
    runner: Runner
    cache: BaselineCache
    proposer: Proposer
    on_progress: Callable[[Progress], None] = lambda progress: None
    on_log: Callable[[str], None] = lambda line: None
    clock: Callable[[], float] = time.time
