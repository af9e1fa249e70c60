"""What a running campaign reports to its display: one immutable snapshot per change.

The figures are the campaign's summary (agent/campaign/summary.py), the one source of them, which `optforge
status` shows too; the snapshot adds only what the loop alone knows: its phase, its generation and
its live clock. The display (agent/cli/campaign_display.py) only renders these, so the two never share
mutable state.
"""

from __future__ import annotations

from dataclasses import dataclass

from optforge.agent.campaign.summary import CampaignSummary


@dataclass(frozen=True)
class Progress:
    summary: CampaignSummary
    phase: str  # one line: "proposing", "tier 1: 3fa9c2e1 adam_tanh", "stopped: ...", ...
    generation: int = 0
    elapsed_s: float = 0.0  # over all runs, up to now (the summary's stops at the last record)
    eta_s: float | None = None  # None until there is a rate to extrapolate from
