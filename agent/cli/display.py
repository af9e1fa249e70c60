"""Rich tables for the terminal; rich prints plain text when stdout is not a terminal."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from optforge.agent.review.view import batching_text
from optforge.archive import EvaluationRecord
from optforge.tasks.kinds import kind_spec
from optforge.tasks.preference.task import PreferenceTask
from optforge.tasks.proxy import ProxyTask
from optforge.tasks.scaling.task import GAP_CAP, ScalingTask

# Rich wraps at 80 columns when stdout is not a terminal (CI logs, pipes): give tables room instead.
console = Console() if Console().is_terminal else Console(width=160)
errors = Console(stderr=True)


def print_progress(message: str) -> None:
    errors.print(f"[dim]{message}[/dim]")


def print_tasks(tasks: Sequence[ProxyTask], preference: Sequence[PreferenceTask] = (),
                scaling: Sequence[ScalingTask] = ()) -> None:
    table = Table(title="optforge proxy tasks")
    for column in ("tier", "task", "objective", "steps", "batch", "description"):
        table.add_column(column)
    for t in sorted(tasks, key=lambda t: (t.tier, not t.in_suite)):
        tier = str(t.tier) if t.in_suite else f"{t.tier} (study)"
        table.add_row(tier, t.name, t.objective, str(t.steps), str(t.batch_size), t.description)
    console.print(table)
    console.print("Tier 0 (conformance, < 1 s) runs before every tier; tier 2 is held out from proposers. "
                  "Tasks marked (study) are run only by benchmarks/transfer_study.py, not scored.")
    if preference:
        table = Table(title="preference task (kind preference_loss; scored against DPO)")
        for column in ("tier", "task", "seeds", "betas", "steps", "pairs/step", "description"):
            table.add_column(column)
        for p in preference:
            table.add_row(str(p.tier), p.name, ", ".join(map(str, p.seeds)), ", ".join(f"{b:g}" for b in p.betas),
                          str(p.steps), str(p.batch_size), p.description)
        console.print(table)
    if scaling:
        table = Table(title="scaling task (kind scaling_rule; scored against each width's tuned optimum)")
        for column in ("tier", "task", "widths", "seeds", "steps", "batch", "description"):
            table.add_column(column)
        for st in scaling:
            table.add_row(str(st.tier), st.name, ", ".join(map(str, st.widths)), ", ".join(map(str, st.seeds)),
                          str(st.recipe.steps), str(st.recipe.batch), st.description)
        console.print(table)


def _ci(ci: tuple[float, float] | None) -> str:
    return f"[{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""


def print_evaluation(path: pathlib.Path, ev: EvaluationRecord, kind: str) -> None:
    if kind_spec(kind).evaluation == "preference":
        _print_preference_evaluation(path, ev, kind)
        return
    if kind_spec(kind).evaluation == "scaling":
        _print_scaling_evaluation(path, ev, kind)
        return
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
    else:
        _print_tier0_or_failure(ev)


def _print_score_or_failure(ev: EvaluationRecord, score: str, meaning: str) -> None:
    """The evaluation's score (`score`, formatted) and what it means, else how it ended."""
    if ev.status == "ok" and ev.score is not None:
        console.print(f"score {score} {_ci(ev.score_ci)} ({meaning})  [{ev.seconds:.1f} s]")
    else:
        _print_tier0_or_failure(ev)


def _print_tier0_or_failure(ev: EvaluationRecord) -> None:
    if ev.status == "ok":
        batching = batching_text(ev.batching, ev.batching_note) or "-"
        console.print(f"passed tier 0 (batching: {batching}, fingerprint {ev.fingerprint})")
    else:
        console.print(f"[red]status {ev.status}[/red]: {ev.error}")


def _print_preference_evaluation(path: pathlib.Path, ev: EvaluationRecord, kind: str) -> None:
    """The preference task: the area under the reward-vs-KL hull against DPO's, and the (KL, reward)
    point of each beta, the candidate's next to DPO's."""
    for t in ev.tasks:
        table = Table(title=f"{path} ({kind}) vs DPO, {t.name}, tier {ev.tier}, {ev.seeds} seed(s)")
        for column in ("beta", "KL", "reward", "DPO KL", "DPO reward"):
            table.add_column(column, justify="right")
        dpo = {b: (kl, r) for b, kl, r in t.reference_frontier}
        for beta, kl, reward in t.frontier:
            ref = dpo.get(beta)
            table.add_row(f"{beta:g}", f"{kl:.2f}", f"{reward:+.3f}", f"{ref[0]:.2f}" if ref else "-",
                          f"{ref[1]:+.3f}" if ref else "-")
        if t.frontier:
            console.print(table)
        if t.status == "ok" and t.final is not None and t.reference_final is not None:
            console.print(f"{t.name}: area {t.final:.4f} {_ci(t.final_ci)}, DPO {t.reference_final:.4f}  [{t.seconds:.1f} s]")
    _print_score_or_failure(ev, f"{ev.score or 0:.3f}", "area under the reward-vs-KL hull up to the KL cap / DPO's; "
                            "1.0 = as good as DPO, higher is better")


def _print_scaling_evaluation(path: pathlib.Path, ev: EvaluationRecord, kind: str) -> None:
    """The scaling task: per width, the held-out loss against that width's tuned optimum (the gap, in
    nats) and the learning rate and weight decay the rule gave each group."""
    if ev.tasks:
        table = Table(title=f"{path} ({kind}) vs each width's tuned optimum, tier {ev.tier}, {ev.seeds} seed(s)")
        for column in ("width", "status", "score", "gap nats", "95% CI", "loss", "tuned", "hidden lr", "tuned lr",
                       "rule: lr / wd per group", "time s"):
            table.add_column(column, justify="left" if column in ("width", "status", "rule: lr / wd per group") else "right")
        for t in ev.tasks:
            gap = None if t.final is None or t.reference_final is None else t.final - t.reference_final
            rule = "  ".join(f"{g[:3]} {lr:.3g}/{wd:.3g}" for g, lr, wd in t.hyperparameters)
            table.add_row(t.name.rpartition("_w")[2], t.status if t.status == "ok" else f"[red]{t.status}[/red]",
                          f"{t.score:.4f}" if t.score is not None else "-",
                          f"{gap:+.4f}" if gap is not None else (t.error or "-"),
                          _ci(t.paired_diff_ci), f"{t.final:.4f}" if t.final is not None else "-",
                          f"{t.reference_final:.4f}" if t.reference_final is not None else "-",
                          f"{t.lr:.3g}" if t.lr else "-", f"{t.reference_lr:.3g}" if t.reference_lr else "-",
                          rule, f"{t.seconds:.1f}")
        console.print(table)
        for t in ev.tasks:
            if t.status == "ok" and t.error:
                console.print(f"{t.name}: {t.error}")
    _print_score_or_failure(ev, f"{ev.score or 0:.4f}", f"exp(-mean gap to each width's tuned optimum, capped at "
                            f"{GAP_CAP:g} nats); 1.0 = as good as tuning every width, higher is better")
