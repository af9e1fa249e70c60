"""The campaign's terminal output: a live panel while it runs, and the report when it ends.

`LiveDisplay` only renders the `Progress` snapshots the campaign hands it (agent/campaign/progress.py), and
`print_summary` / `print_status` only render a `CampaignSummary` (agent/campaign/summary.py): nothing here
reads the archive or keeps campaign state. Without a terminal (CI logs, pipes, `nohup`) the output
is plain lines at width 160, like agent/cli/display.py's.
"""

from __future__ import annotations

import shlex
import time
from types import TracebackType

from rich.console import Console, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from optforge.agent.campaign.progress import Progress
from optforge.agent.campaign.summary import CampaignSummary, CandidateRow
from optforge.agent.campaign.summary_text import (
    NOT_FAILURES,
    best_text,
    duration_text,
    failures_text,
    llm_text,
    report_lines,
    score_text,
    shows_llm,
    state_text,
)
from optforge.tasks.kinds import reference_label

_REFRESH_PER_SECOND = 4  # enough for a ticking clock; each refresh re-renders a small panel


def default_console() -> Console:
    """agent/cli/display.py's rule (Rich wraps at 80 columns off a terminal: give lines room), made
    here rather than imported because display.py imports the tasks, and with them torch."""
    return Console() if Console().is_terminal else Console(width=160)


# -- while the campaign runs ------------------------------------------------------------------


class LiveDisplay:
    """Shows a running campaign. Use as a context manager; `update` with each new snapshot.

    Live (a terminal): a panel refreshed a few times a second, log lines printed above it. Not live:
    plain lines; a progress line only when the count or the best changed, or the campaign stopped
    (the campaign's own log lines already say which tier each candidate is in), so a log grows by
    about two lines per candidate."""

    def __init__(self, console: Console | None = None, live: bool | None = None) -> None:
        self.console = console or default_console()
        self.live = self.console.is_terminal if live is None else live
        self._progress: Progress | None = None
        self._updated_at = time.monotonic()  # when the snapshot came: the clock ticks from there
        self._live: Live | None = None
        self._last_key: tuple[object, ...] | None = None

    def __enter__(self) -> LiveDisplay:
        if self.live:
            self._live = Live(
                console=self.console,
                get_renderable=self._renderable,
                refresh_per_second=_REFRESH_PER_SECOND,
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()  # renders the last state once more; the panel stays on screen
            self._live = None

    def update(self, progress: Progress) -> None:
        self._progress = progress
        self._updated_at = time.monotonic()
        if self._live is not None:
            self._live.refresh()
        elif not self.live:
            self._print_if_changed(progress)

    def log(self, line: str) -> None:
        # markup=False: a line is printed as is, brackets and all; soft_wrap keeps it one line.
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def _print_if_changed(self, progress: Progress) -> None:
        stopped = (progress.phase or "").startswith("stopped")
        s = progress.summary
        best = None if s.best is None else (s.best.id, s.best.score, s.best.score_tier)
        key = (s.done, s.budget, best, stopped)
        if key != self._last_key:
            self._last_key = key
            self.log(progress_line(progress))

    def _renderable(self) -> RenderableType:
        if self._progress is None:
            return Text("optforge: starting ...")
        return progress_panel(self._progress, time.monotonic() - self._updated_at)


def progress_line(p: Progress) -> str:
    """`[done/budget] best <score> <id12> <name> | failures: ... | llm: ... | eta ...`."""
    s = p.summary
    parts = [f"[{s.done}/{s.budget}] best {best_text(s.best)}"]
    parts.append(f"failures: {failures_text(s.statuses)}")
    if s.deduplicated or s.duplicate_sources or s.proposal_failures:
        parts.append(_dedupe_text(s))
    if shows_llm(s.proposer, s.llm_calls):
        parts.append(f"llm: {llm_text(s, short=True)}")
    parts.append(f"elapsed {duration_text(p.elapsed_s)}, eta {duration_text(p.eta_s)}")
    parts.append(p.phase or "")
    return " | ".join(part for part in parts if part)


def _dedupe_text(s: CampaignSummary) -> str:
    return (
        f"dedupe: {s.deduplicated} reused evaluations, {s.duplicate_sources} duplicate sources, "
        f"{s.proposal_failures} failed proposals"
    )


def progress_panel(p: Progress, since_update_s: float = 0.0) -> Panel:
    """The live panel; `since_update_s` advances the clock between snapshots."""
    s = p.summary
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(s.budget, 1), completed=min(s.done, max(s.budget, 1)), width=40),
        f"{s.done}/{s.budget} candidates (+{s.n_seeds} seeds), generation {p.generation}",
    )
    grid.add_row("progress", bar)
    grid.add_row("best", Text(best_text(s.best)))
    grid.add_row("phase", Text(p.phase or "-"))
    grid.add_row("failures", Text(failures_text(s.statuses)))
    grid.add_row("dedupe", Text(_dedupe_text(s).removeprefix("dedupe: ")))
    if shows_llm(s.proposer, s.llm_calls):
        grid.add_row("llm", Text(llm_text(s)))
    eta = None if p.eta_s is None else max(p.eta_s - since_update_s, 0.0)
    elapsed = (p.elapsed_s or 0.0) + since_update_s
    grid.add_row("time", f"elapsed {duration_text(elapsed)}, eta {duration_text(eta)}")
    title = f"optforge: {s.kind} campaign, proposer {s.proposer or '?'}"
    return Panel(grid, title=Text(title), subtitle=Text(str(s.archive)), expand=False)


# -- when it ends, and `optforge status` ------------------------------------------------------


def print_summary(summary: CampaignSummary, console: Console | None = None) -> None:
    """The end-of-campaign report: top candidates, the best against the baselines, the counts."""
    out = console or default_console()
    _print_report(summary, out)


def print_status(summary: CampaignSummary, console: Console | None = None) -> None:
    """`optforge status DIR`: the report plus how the campaign ended and how to resume it."""
    out = console or default_console()
    _plain(out, f"state: {state_text(summary)}")
    _print_report(summary, out)
    if not summary.budget_exhausted:
        hint = f"optforge resume {shlex.quote(str(summary.archive.parent))}"
        running = " (once it is no longer running)" if summary.stopped_reason is None else ""
        _plain(
            out, f"{summary.budget - summary.done} candidates left in the budget: {hint}{running}"
        )


def _plain(out: Console, line: str) -> None:
    out.print(line, markup=False, highlight=False, soft_wrap=True)


def _print_report(s: CampaignSummary, out: Console) -> None:
    _plain(
        out,
        f"optforge {s.kind} campaign, proposer {s.proposer or '?'}: {s.done}/{s.budget} "
        f"candidates (+{s.n_seeds} seeds) in {duration_text(s.elapsed_s)}",
    )
    if s.top:
        out.print(top_table(s))
    for line in report_lines(s):
        _plain(out, line)


def top_table(s: CampaignSummary) -> Table:
    table = Table(
        title=f"top {len(s.top)}, x {reference_label(s.kind)}: verified on tier 2 first (by tier-2 score), then "
        "tier 1 only (by tier-1 score)"
    )
    for column in ("#", "id", "name", "proposer", "tier", "tier 1 [95% CI]", "tier 2 [95% CI]"):
        table.add_column(column, justify="right" if column in ("#", "tier") else "left")
    table.add_column("status")
    champion = s.champion.id if s.champion else None
    for rank, row in enumerate(s.top, 1):
        table.add_row(*_table_cells(rank, row, row.id == champion))
    if champion in {row.id for row in s.top}:
        table.caption = "* champion: the best tier-2 score among the new candidates"
    return table


def _table_cells(rank: int, row: CandidateRow, champion: bool) -> tuple[str | Text, ...]:
    return (
        str(rank),
        row.id[:12],
        Text(row.name + (" *" if champion else ""), overflow="ellipsis"),
        row.proposer,
        str(row.tier) if row.tier >= 0 else "-",
        score_text(row.tier1_score, row.tier1_ci),
        score_text(row.tier2_score, row.tier2_ci),
        Text(row.status, style="" if row.status in NOT_FAILURES else "red"),
    )


