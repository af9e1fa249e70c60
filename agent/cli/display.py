"""Rich tables for the terminal; rich prints plain text when stdout is not a terminal."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from optforge.agent.review.view import batching_text
from optforge.archive import EvaluationRecord
from optforge.tasks.proxy import ProxyTask

# Rich wraps at 80 columns when stdout is not a terminal (CI logs, pipes): give tables room instead.
console = Console() if Console().is_terminal else Console(width=160)
errors = Console(stderr=True)


def print_progress(message: str) -> None:
    errors.print(f"[dim]{message}[/dim]")


def print_tasks(tasks: Sequence[ProxyTask]) -> None:
    table = Table(title="optforge proxy tasks")
    for column in ("tier", "task", "objective", "steps", "batch", "description"):
        table.add_column(column)
    for t in sorted(tasks, key=lambda t: (t.tier, not t.in_suite)):
        tier = str(t.tier) if t.in_suite else f"{t.tier} (study)"
        table.add_row(tier, t.name, t.objective, str(t.steps), str(t.batch_size), t.description)
    console.print(table)
    console.print("Tier 0 (conformance, < 1 s) runs before every tier; tier 2 is held out from proposers. "
                  "Tasks marked (study) are run only by benchmarks/transfer_study.py, not scored.")


def _ci(ci: tuple[float, float] | None) -> str:
    return f"[{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""


def print_evaluation(path: pathlib.Path, ev: EvaluationRecord, kind: str) -> None:
    if ev.tasks:
        table = Table(title=f"{path} ({kind}) vs tuned AdamW, tier {ev.tier}, {ev.seeds} seeds")
        columns = ("task", "status", "score", "95% CI", "metric", "held-out", "AdamW", "best lr", "AdamW lr", "time s")
        for column in columns:
            table.add_column(column, justify="left" if column in ("task", "status", "metric") else "right")
        for t in ev.tasks:
            ok = t.status == "ok"
            table.add_row(
                t.name,
                t.status if ok else f"[red]{t.status}[/red]",
                f"{t.score:.3f}" if t.score is not None else "-",
                _ci(t.score_ci),
                t.metric,
                f"{t.final:.4g}" if t.final is not None else (t.error or "-"),
                f"{t.reference_final:.4g}" if t.reference_final is not None else "-",
                f"{t.lr:.3g}" if t.lr else "-",
                f"{t.reference_lr:.3g}" if t.reference_lr else "-",
                f"{t.seconds:.1f}",
            )
        console.print(table)
    if ev.status == "ok" and ev.score is not None:
        console.print(
            f"aggregate score {ev.score:.3f} {_ci(ev.score_ci)} (geometric mean over tasks of tuned AdamW's held-out"
            f" metric / the candidate's; 1.0 = as good as AdamW, higher is better)  [{ev.seconds:.1f} s]"
        )
    elif ev.status == "ok":
        batching = batching_text(ev.batching, ev.batching_note) or "-"
        console.print(f"passed tier 0 (batching: {batching}, fingerprint {ev.fingerprint})")
    else:
        console.print(f"[red]status {ev.status}[/red]: {ev.error}")
