"""Terminal rendering of the review commands (`ls`, `show`, `diff`, `lineage`).

Only renders what agent/review/view.py computed. On a terminal: colours, syntax highlighting, a tree;
otherwise (pipes, files, CI) the same content as plain text at width 160, code without line numbers
so that it can be saved and run.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from optforge.agent.campaign.summary import CandidateRow, RankBy
from optforge.agent.campaign.summary_text import evaluation_of, score_text
from optforge.agent.cli.campaign_display import default_console
from optforge.agent.review.calls import outcome, outcome_text
from optforge.agent.review.view import (
    ArchiveView,
    LineageNode,
    baseline_table,
    batching_text,
    first_line,
    idea_of,
    ranking_ci,
)
from optforge.archive import CandidateRecord, EvaluationRecord, TaskResult
from optforge.tasks.kinds import reference_label
from optforge.tasks.scoring import HIGHER_IS_BETTER

_GOOD = ("ok", "pending")


def _status(status: str) -> Text:
    return Text(status, style="" if status in _GOOD else "red")


def _short(ids: Sequence[str]) -> str:
    return ", ".join(i[:12] for i in ids) or "-"


def _first(ids: Sequence[str]) -> str:
    """The first parent, and how many more (`show` lists them all): room for the name in `ls`."""
    if not ids:
        return "-"
    return ids[0][:12] + (f" +{len(ids) - 1}" if len(ids) > 1 else "")


def _plain(out: Console, line: str) -> None:
    out.print(line, markup=False, highlight=False, soft_wrap=True)


# -- ls -----------------------------------------------------------------------------------------


# What each ranking means, for the table's title.
RANK_WORDS = {
    "tier2": "verified on tier 2 first (by tier-2 score), then tier 1 only",
    "tier1": "by tier-1 (screen) score alone",
}


def print_ls(
    listed: Sequence[tuple[int, CandidateRow]],
    total: int,
    by: RankBy = "tier2",
    out: Console | None = None,
) -> None:
    out = out or default_console()
    if not listed:
        _plain(out, "no candidates match" if total else "the archive holds no candidates yet")
        return
    kind = listed[0][1].kind
    held_out = "held-out width" if evaluation_of(kind) == "scaling" else "held out"
    table = Table(
        title=f"{len(listed)} of {total} candidates, {RANK_WORDS[by]} (scores x {reference_label(kind)}; "
        f"tier 2 = {held_out})"
    )
    for column in (
        "#",
        "id",
        "name",
        "tier 2 [95% CI]",
        "tier 1 [95% CI]",
        "status",
        "island",
        "proposer",
        "parent",
    ):
        # Ids and scores keep to one line; a long name gives way first.
        table.add_column(
            column,
            justify="right" if column in ("#", "island") else "left",
            no_wrap=column != "name",
        )
    for rank, row in listed:
        table.add_row(
            str(rank),
            row.id[:12],
            Text(row.name, overflow="ellipsis"),
            score_text(row.tier2_score, row.tier2_ci),
            score_text(row.tier1_score, row.tier1_ci),
            _status(row.status),  # the tier it failed at: the first score column without a score
            str(row.island),
            row.proposer,
            _first(row.parent_ids),
        )
    out.print(table)


# -- show ---------------------------------------------------------------------------------------


def print_show(view: ArchiveView, candidate: CandidateRecord, out: Console | None = None) -> None:
    out = out or default_console()
    row = view.rows[candidate.id]
    rank = next(i for i, r in enumerate(view.ranked(), 1) if r.id == candidate.id)
    _plain(out, f"{candidate.name}  {candidate.id}")
    for label, value in _facts(view, candidate, row, rank):
        _plain(out, f"{label + ':':<10} {value}")
    for evaluation in view.evaluations.get(candidate.id, ()):
        _print_evaluation(out, evaluation, candidate.kind)
    for tier in (1, 2):
        if view.evaluation(candidate.id, tier) is None:
            continue
        if any(view.evaluation(seed.id, tier) for seed in view.seeds()):
            out.print(_baseline_matrix(view, candidate, tier))
        else:
            _plain(out, f"no seed baseline was evaluated on tier {tier} (cascade.seeds_tier2 off)")
    _print_calls(out, view, candidate)
    _plain(out, "code:")
    if out.is_terminal:
        out.print(
            Syntax(
                candidate.source,
                "python",
                line_numbers=True,
                word_wrap=True,
                background_color="default",
            )
        )
    else:
        _plain(out, candidate.source.rstrip("\n"))


def _facts(
    view: ArchiveView, candidate: CandidateRecord, row: CandidateRow, rank: int
) -> list[tuple[str, str]]:
    tier = f"tier {row.tier}" if row.tier >= 0 else "not evaluated yet"
    label, idea = idea_of(candidate)
    when = datetime.datetime.fromtimestamp(candidate.created_at).strftime("%Y-%m-%d %H:%M:%S")
    parents = [view.rows[p] for p in candidate.parent_ids]
    facts = [
        (
            "score",
            f"{score_text(row.score, ranking_ci(row))} x {reference_label(candidate.kind)}"
            + (f" on tier {row.score_tier}" if row.score_tier else "")
            + f" (rank {rank} of {len(view.rows)}, verified first; {tier}, {row.status})",
        ),
        (
            "kind",
            f"{candidate.kind}, island {candidate.island}, generation {candidate.generation}, "
            f"stored {when}",
        ),
        ("proposer", candidate.proposer),
        (label, idea or "not recorded (the proposer stated none)"),
        (
            "parents",
            ", ".join(f"{p.id[:12]} {p.name} {_tiered(p)}" for p in parents) or "none",
        ),
        ("children", _short(view.children.get(candidate.id, ()))),
    ]
    if row.reused_from:
        facts.append(
            ("reused", f"evaluations copied from {row.reused_from[:12]} (same tier-0 behaviour)")
        )
    return facts


def _print_calls(out: Console, view: ArchiveView, candidate: CandidateRecord) -> None:
    """The LLM calls of the proposal that made it: a rejected first reply, then the repair."""
    calls = view.numbered_calls(candidate.id)
    if not calls:
        return
    _plain(out, f"LLM calls: {len(calls)} (`optforge llm calls DIR --seq N` shows one's prompt and reply)")
    for n in calls:
        call = n.call
        kind = outcome(call)
        # A rejected reply here is one the repair round fixed: the candidate is this one.
        said = {"candidate": "reply used", "rejected": f"rejected: {call.rejected}"}.get(
            kind, outcome_text(call, view.candidates)
        )
        _plain(
            out,
            f"  #{n.seq} {call.model}: {call.tokens_in:,} tokens in / {call.tokens_out:,} out, "
            f"{call.latency_s:.2f}s; {said}",
        )


def _print_evaluation(out: Console, e: EvaluationRecord, kind: str) -> None:
    head = f"tier {e.tier}: {e.status}"
    if e.tier > 0:  # tier 0 is pass/fail: it has no score
        head += f", score {score_text(e.score, e.score_ci)}"
    if e.seeds:
        head += f", {e.seeds} seeds"
    head += f", {e.seconds:.1f}s"
    batching = batching_text(e.batching, e.batching_note)
    if batching:
        head += f"; batching: {batching}"
    if e.error:
        head += f"; error: {first_line(e.error)}"
    _plain(out, head)
    if not e.tasks:
        return
    if evaluation_of(kind) == "scaling":
        _print_widths(out, e, kind)
        return
    ref = reference_label(kind)
    higher = all(t.metric in HIGHER_IS_BETTER for t in e.tasks)
    how = f"the candidate's final / {ref}'s" if higher else f"{ref}'s final / the candidate's"
    table = Table(title=f"tier {e.tier} per task (score = {how})")
    errors = any(t.error for t in e.tasks)  # an error column only when there is one
    for column in ("task", "status", "score [95% CI]", "metric", "final", f"{ref} final"):
        table.add_column(column)
    if errors:
        table.add_column("error")
    for t in e.tasks:
        ci = t.score_ci
        cells: list[str | Text] = [
            t.name,
            _status(t.status),
            score_text(t.score, ci),
            t.metric or "-",
            _number(t.final),
            _number(t.reference_final),
        ]
        if errors:
            cells.append(Text(first_line(t.error) or "", overflow="fold"))
        table.add_row(*cells)
    out.print(table)


def _print_widths(out: Console, e: EvaluationRecord, kind: str) -> None:
    """A scaling rule's evaluation: one result per width, each scored by its gap to the width's tuned
    optimum; then the (lr, weight decay) the rule set for each parameter group there."""
    ref = reference_label(kind)
    table = Table(title=f"tier {e.tier} per width (score = exp(-gap); gap = held-out loss - {ref}'s, "
                  "in nats, capped)")
    errors = any(t.error for t in e.tasks)
    for column in ("task", "status", "score [95% CI]", "gap (nats) [95% CI]", "final", f"{ref} final",
                   "hidden lr", f"{ref} lr"):
        table.add_column(column)
    if errors:
        table.add_column("error")
    for t in e.tasks:
        cells: list[str | Text] = [
            t.name, _status(t.status), score_text(t.score, t.score_ci), _gap(t), _number(t.final),
            _number(t.reference_final), _number(t.lr), _number(t.reference_lr),
        ]
        if errors:
            cells.append(Text(first_line(t.error) or "", overflow="fold"))
        table.add_row(*cells)
    out.print(table)
    with_values = [t for t in e.tasks if t.hyperparameters]
    if not with_values:
        return
    groups = list(dict.fromkeys(g for t in with_values for g, _, _ in t.hyperparameters))
    values = Table(title=f"tier {e.tier}: the rule's lr / weight decay for each parameter group")
    for column in ("task", *groups):
        values.add_column(column)
    for t in with_values:
        at = {g: (lr, wd) for g, lr, wd in t.hyperparameters}
        values.add_row(t.name, *(f"{at[g][0]:.4g} / {at[g][1]:.4g}" if g in at else "-" for g in groups))
    out.print(values)


def _gap(t: TaskResult) -> str:
    """A width's gap to the tuned optimum (the mean over seeds of the capped gaps), with its CI."""
    if t.final is None or t.reference_final is None:
        return "-"
    ci = t.paired_diff_ci
    return f"{t.final - t.reference_final:+.4f}" + (f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "")


def _tiered(row: CandidateRow) -> str:
    """A row's score with the tier it comes from: "1.031 (tier 2)"; "-" when unscored."""
    return f"{score_text(row.score)} (tier {row.score_tier})" if row.score_tier else "-"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _baseline_matrix(view: ArchiveView, candidate: CandidateRecord, tier: int) -> Table:
    """The candidate against every seed baseline at one tier: aggregate and per-task scores."""
    rows = baseline_table(view, candidate, tier)
    tasks = [t.name for t in (view.evaluation(candidate.id, tier) or _empty()).tasks]
    table = Table(title=f"tier {tier}: against the baselines (x {reference_label(candidate.kind)}; - = not evaluated)")
    for column in ("candidate", "all tasks", *tasks):
        table.add_column(column, justify="left" if column == "candidate" else "right")
    for r, scores in rows:
        name = Text(r.name + ("" if r.is_seed else " (this)"), style="" if r.is_seed else "bold")
        table.add_row(name, _score(scores, ""), *(_score(scores, t) for t in tasks))
    return table


def _score(scores: dict[str, float | None], task: str) -> str:
    if task not in scores:
        return "-"
    value = scores[task]
    return "failed" if value is None else f"{value:.3f}"


def _empty() -> EvaluationRecord:
    return EvaluationRecord("", 0, "pending")


# -- diff and lineage ---------------------------------------------------------------------------


def print_diff(lines: Sequence[str], out: Console | None = None) -> None:
    out = out or default_console()
    if not lines:
        _plain(out, "(no differences in the source)")
        return
    text = "\n".join(lines)
    if out.is_terminal:
        out.print(Syntax(text, "diff", word_wrap=True, background_color="default"))
    else:
        _plain(out, text)


def print_lineage(root: LineageNode, out: Console | None = None) -> None:
    out = out or default_console()
    tree = Tree(_node_label(root))
    _grow(tree, root)
    out.print(tree)


def _grow(tree: Tree, node: LineageNode) -> None:
    for parent in node.parents:
        _grow(tree.add(_node_label(parent)), parent)


def _node_label(node: LineageNode) -> Text:
    r = node.row
    label = Text(f"{r.id[:12]} {r.name}  {_tiered(r)}  ")
    label.append(r.status, style="" if r.status in _GOOD else "red")
    label.append(f"  {r.proposer}, gen {r.generation}, island {r.island}")
    if node.repeat:
        label.append("  (ancestry shown above)", style="dim")
    return label
