"""The running campaign's clock and its display snapshot (`Progress`), from its records in memory.

The summary (agent/campaign/summary.py) is the one source of the figures: the display shows what `optforge
status` would show, plus the loop's own phase, clock and ETA.
"""

from __future__ import annotations

from optforge.agent.campaign.parts import CampaignParts
from optforge.agent.campaign.progress import Progress
from optforge.agent.campaign.state import CampaignArchive
from optforge.agent.campaign.summary import summarize_snapshot
from optforge.agent.config import CampaignConfig


class CampaignClock:
    """Wall time over all runs of a campaign (resumes included), and this run's pace."""

    def __init__(self, archive: CampaignArchive, parts: CampaignParts):
        self.archive, self.parts = archive, parts
        # Set by `start`, when a run begins (the summary of earlier runs is computed only then).
        self.before, self.started, self.done_at_start = 0.0, parts.clock(), archive.done()
        self.search_started: float | None = None  # when proposing began in this run (for the ETA)

    def start(self) -> None:
        """A run begins: what earlier runs took, and where this one starts from."""
        self.before = summarize_snapshot(self.archive.snapshot(), top=0).elapsed_s
        self.started = self.parts.clock()
        self.done_at_start = self.archive.done()
        self.search_started = None

    def elapsed(self) -> float:
        return self.before + self.parts.clock() - self.started

    def eta(self, done: int, budget: int) -> float | None:
        """Seconds left at this run's pace so far; None before it has made a candidate."""
        new = done - self.done_at_start
        run_time = self.parts.clock() - (self.search_started or self.parts.clock())
        return max((budget - done) * run_time / new, 0.0) if new > 0 else None


class ProgressReporter:
    def __init__(self, archive: CampaignArchive, config: CampaignConfig, parts: CampaignParts,
                 clock: CampaignClock):
        self.archive, self.config, self.parts, self.clock = archive, config, parts, clock

    def report(self, phase: str, generation: int) -> None:
        summary = summarize_snapshot(self.archive.snapshot(), top=1)
        eta = self.clock.eta(summary.done, self.config.budget.max_candidates)
        self.parts.on_progress(Progress(summary, phase, generation, self.clock.elapsed(), eta))
