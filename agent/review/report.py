"""`optforge report`: one self-contained HTML page about a campaign (no scripts, fonts, images or
styles from anywhere: it works offline and from file://).

Candidate names, code, ideas and errors come from the archive and are untrusted (an LLM or a
mutator wrote them): every archive string goes through `html.escape` before it reaches the page.
"""

from __future__ import annotations

import datetime
import html
import math
from collections.abc import Callable

from optforge.agent.campaign.summary import CampaignSummary, CandidateRow, llm_figures, summarize
from optforge.agent.campaign.summary_text import (
    bar_lines,
    cost_unknown,
    evaluation_of,
    report_lines,
    score_text,
    state_text,
)
from optforge.agent.review.calls import outcome, outcome_text, time_text, totals_text
from optforge.agent.review.report_data import (
    LION,
    MUP,
    CurvePanel,
    FrontierPanel,
    RuleWidths,
    WidthResult,
    best_by_island,
    curve_candidates,
    curve_panels,
    differences,
    frontier_candidates,
    frontier_panels,
    law_text,
    llm_cost_over_time,
    new_scores,
    scaling_candidates,
    scaling_rules,
    seed_row,
    status_over_time,
    tuned_optimum,
)
from optforge.agent.review.report_svg import PALETTE, Series, histogram, line_chart
from optforge.agent.review.view import (
    ArchiveView,
    LineageNode,
    idea_of,
    latest_batching,
    lineage,
    read_view,
    unified_diff,
)
from optforge.archive import ArchiveStore
from optforge.tasks.kinds import reference_label

_CANDIDATE_COLORS = (
    PALETTE[1],
    PALETTE[2],
    PALETTE[3],
    PALETTE[5],
    PALETTE[6],
)  # not AdamW's, Lion's
CURVE_CANDIDATES = 3  # top new candidates drawn in the per-task curves (more lines get unreadable)
REPORT_CALLS = 50  # the LLM calls table lists the latest this many

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.charts svg { width: 540px; height: auto; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
/* The top table keeps to the page width: fixed columns, long names wrap, and each candidate's
   code, change and diff sit in a full-width row under it, where an opened one scrolls sideways
   instead of widening the page (mutants' names and lines run long). */
table.top { width: 100%; table-layout: fixed; }
table.top td, table.top th { overflow-wrap: anywhere; }
table.top th:nth-child(1) { width: 3%; } table.top th:nth-child(2) { width: 12%; }
table.top th:nth-child(4) { width: 15%; } table.top th:nth-child(5) { width: 15%; }
table.top th:nth-child(6) { width: 4%; } table.top th:nth-child(7) { width: 9%; }
table.top th:nth-child(8) { width: 8%; }
table.top td:nth-child(4), table.top td:nth-child(5) { white-space: nowrap; }
tr.more td { border-top: none; padding-bottom: 8px; }
tr.more details { display: inline-block; margin-right: 2em; }
tr.more details[open] { display: block; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 0.85em; }
.add { color: #0a6b2a; } .del { color: #b0151b; } .hunk { color: #6a4ca8; }
.bad { color: #b0151b; } .note { color: #555; font-style: italic; }
ul.tree { list-style: none; padding-left: 1.2em; border-left: 1px dotted #aaa; }
code { font-size: 0.95em; }
"""


def e(text: object) -> str:
    """Escape anything that came from the archive (or anywhere else) for HTML text/attributes."""
    return html.escape(str(text), quote=True)


def build_report(store: ArchiveStore, top: int = 5) -> str:
    """The report page's HTML (the caller writes it where it wants)."""
    summary = summarize(store, top=top)
    view = read_view(store)
    ranked = view.ranked()
    new_ranked = [r for r in ranked if not r.is_seed and r.score is not None]
    sections = [
        _header(summary, view),
        _section("Progress", _progress_charts(view, summary.kind)),
        _section(f"Top {min(top, len(ranked))} candidates", _top_table(view, ranked[:top])),
        _section("Lineage of the best new candidate", _best_lineage(view, new_ranked)),
        _comparison_section(summary.kind, view, new_ranked),
        _section("LLM cost", _llm_cost(view)),
        _section("LLM calls", _llm_calls(view)) if view.llm_calls else "",
    ]
    title = f"optforge report: {summary.kind} campaign"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{e(title)}</h1>{''.join(sections)}</body></html>\n"
    )


def _section(title: str, body: str) -> str:
    return f"<section><h2>{e(title)}</h2>{body}</section>"


def _note(text: str) -> str:
    return f'<p class="note">{e(text)}</p>'


def _header(summary: CampaignSummary, view: ArchiveView) -> str:
    made = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    bar = bar_lines(summary)
    lines = [
        f"{summary.done}/{summary.budget} new candidates (+{summary.n_seeds} seeds), proposer "
        f"{summary.proposer or '?'}; state: {state_text(summary)}",
        *(line for line in report_lines(summary) if line not in bar),
        f"report made {made}; {_scale(summary.kind)}; rankings put candidates verified on tier 2 first",
    ]
    return "".join(f"<p><strong>{e(line)}</strong></p>" for line in bar) + "".join(
        f"<p>{e(line)}</p>" for line in lines
    )


# -- charts -------------------------------------------------------------------------------------


def _scale(kind: str) -> str:
    """What a score of 1.0 is, in words."""
    evaluation = evaluation_of(kind)
    if evaluation == "preference":
        return ("scores are x DPO (the candidate's area under the reward-vs-KL hull over DPO's: "
                "1.0 = as good, above 1 better; tier 2 = held-out prompts and seeds)")
    if evaluation == "scaling":
        from optforge.tasks.scaling.task import scaling_task

        held_out = "/".join(str(w) for w in scaling_task(2).widths)
        return (f"scores are x {reference_label(kind)} (exp(-mean gap in held-out loss to each width's "
                "tuned optimum, in nats): 1.0 = as good as tuning every width, above 1 better; "
                f"tier 2 = width {held_out}, never scored on tier 1)")
    return ("scores are x tuned AdamW (its final held-out loss over the candidate's: 1.0 = as good, "
            "above 1 better; tier 2 = held out)")


def _progress_charts(view: ArchiveView, kind: str) -> str:
    ref = reference_label(kind)
    charts = [_best_chart(view, ref), _score_histogram(view, ref), _status_chart(view)]
    return '<div class="charts">' + "".join(charts) + "</div>"


def _best_chart(view: ArchiveView, ref: str) -> str:
    lines = best_by_island(view)
    if not lines:
        return _note("no candidate has a score yet")
    series = [
        Series(label, tuple(points), PALETTE[i % len(PALETTE)], dashed=label == "all")
        for i, (label, points) in enumerate(lines.items())
    ]
    return line_chart(
        series,
        title="best tier-1 score so far, by island of birth",
        x_label="candidates stored (seeds first)",
        y_label=f"best tier-1 score (x {ref})",
        step=True,
    )


def _score_histogram(view: ArchiveView, ref: str) -> str:
    scores = new_scores(view)
    if not scores:
        return _note("no new candidate has a score yet")
    markers = [("AdamW" if ref == "tuned AdamW" else ref, 1.0)]
    for name, label in ((LION, "Lion"), (MUP, "muP")):  # an optimizer's campaign, a scaling rule's
        seed = seed_row(view, name)
        if seed is not None and seed.tier1_score is not None:
            markers.append((label, seed.tier1_score))
    return histogram(
        scores,
        title=f"tier-1 scores of the {len(scores)} scored new candidates",
        x_label=f"tier-1 score (x {ref})",
        markers=markers,
    )


def _status_chart(view: ArchiveView) -> str:
    by_status = status_over_time(view)
    if not by_status:
        return _note("no new candidates yet")
    series = [
        Series(status, tuple(points), PALETTE[i % len(PALETTE)], dashed=status == "ok")
        for i, (status, points) in enumerate(by_status.items())
    ]
    return line_chart(
        series,
        title="outcomes by status (cumulative)",
        x_label="new candidates stored",
        y_label="candidates",
    )


def _comparison_section(kind: str, view: ArchiveView, new_ranked: list[CandidateRow]) -> str:
    """How the best compare with the reference where it counts: held-out curves against AdamW and
    Lion, for a kind scored on the preference task reward-vs-KL points against DPO and LRML, and for
    a scaling rule its hyperparameters and gaps against width next to muP's and the tuned optimum."""
    evaluation = evaluation_of(kind)
    if evaluation == "preference":
        return _section("Reward-vs-KL frontier against DPO and LRML", _frontiers(view, new_ranked))
    if evaluation == "scaling":
        return _section("Learning rate and weight decay against width, and per-width gaps",
                        _scaling(view, new_ranked))
    return _section("Held-out loss curves against AdamW and Lion", _curves(view, new_ranked))


def _frontiers(view: ArchiveView, new_ranked: list[CandidateRow]) -> str:
    if not new_ranked:
        return _note("no new candidate has a score yet: nothing to compare with DPO and LRML")
    parts = [_note(
        "mean reward (VADER) and KL from the reference (nats per continuation) of the policy trained "
        "at each beta, averaged over seeds; the score is the area under the upper concave hull of "
        "these points (and the reference's), up to the KL cap, against DPO's"
    )]
    def charts(tier: int) -> list[str]:
        top = frontier_candidates(view, new_ranked, tier, CURVE_CANDIDATES)
        return [_frontier_chart(p) for p in frontier_panels(view, top, tier)]

    tiers = ((2, "held-out prompts, 3 seeds"), (1, "the screen"))
    return "".join(parts) + _by_tier(tiers, charts, "reward-vs-KL points")


def _frontier_chart(panel: FrontierPanel) -> str:
    series = []
    for i, (label, points) in enumerate(panel.points.items()):
        color = {"DPO": PALETTE[0], "LRML": PALETTE[4]}.get(label, _CANDIDATE_COLORS[i % 5])
        series.append(Series(label, points, color, dashed=label in ("DPO", "LRML")))
    chart = line_chart(series, title=f"{panel.task} (tier {panel.tier})",
                       x_label="KL from the reference (nats per continuation)", y_label="reward (VADER)")
    missing = _note("not drawn: " + "; ".join(panel.missing)) if panel.missing else ""
    return f"<div>{chart}{missing}</div>"


_RULE_COLORS = {"tuned optimum": PALETTE[0], "mup": PALETTE[4], "constant": PALETTE[6]}


def _scaling(view: ArchiveView, new_ranked: list[CandidateRow]) -> str:
    """The top new rules, muP and constant against width: the hidden group's lr and weight decay
    (with the tuned optimum's), the gap at each width, and every group's values in a table."""
    if not new_ranked:
        return _note("no new candidate has a score yet: nothing to compare with muP and the tuned optimum")
    top = scaling_candidates(view, new_ranked, CURVE_CANDIDATES)
    if not top:
        return _note("no new candidate has per-width results yet (the hyperparameters it trained with)")
    from optforge.tasks.scaling.task import GAP_CAP, scaling_task

    rules, missing = scaling_rules(view, top)
    optimum = tuned_optimum(view, rules)
    screen, held_out = scaling_task(1), scaling_task(2)
    base = ""
    if optimum.base_width:
        base = f"; the tuned optimum's point at width {optimum.base_width} is the base every rule scales from"
    parts = [_note(
        "the hidden matrices' learning rate and weight decay that each rule set at each width, and its gap: "
        "its mean held-out loss minus the tuned optimum's at that width, in nats (capped at "
        f"{GAP_CAP:g}; 0 = as good as tuning that width, below 0 better); widths "
        f"{_widths(screen.widths)} are tier 1 ({len(screen.seeds)} seed{'s' if len(screen.seeds) > 1 else ''}), "
        f"{_widths(held_out.widths)} tier 2 ({len(held_out.seeds)} paired seeds, the finalists only){base}"
    )]
    scored = sorted({w.width for r in rules for w in r.widths})
    widths = sorted({*scored, optimum.base_width}) if optimum.base_width else scored  # the x ticks
    charts = [
        _width_chart(rules, lambda r: r.values("hidden", 0), optimum.lr, widths,
                     "hidden learning rate against width", "hidden-matrix lr", log_y=True),
        _width_chart(rules, lambda r: r.values("hidden", 1), optimum.weight_decay, widths,
                     "hidden weight decay against width", "hidden-matrix weight decay", log_y=True),
        _width_chart(rules, RuleWidths.gaps, tuple((float(w), 0.0) for w in scored), widths,
                     "gap to the tuned optimum against width", "held-out loss - tuned optimum's (nats)"),
    ]
    parts.append(f'<div class="charts">{"".join(charts)}</div>')
    failed = [f"{r.label} at width {w.width}: {w.status}" for r in rules for w in r.widths if w.gap is None]
    not_drawn = [*missing, *([optimum.note] if optimum.note else []), *(f"the gap of {f}" for f in failed)]
    if not_drawn:
        parts.append(_note("not drawn: " + "; ".join(not_drawn)))
    parts.append(_group_table(rules, scored))
    parts.append(_against_mup(rules))
    return "".join(parts)


def _widths(widths: tuple[int, ...]) -> str:
    return "/".join(str(w) for w in widths)


def _width_chart(
    rules: list[RuleWidths], values: Callable[[RuleWidths], list[tuple[float, float]]],
    optimum: tuple[tuple[float, float], ...], widths: list[int], title: str, y_label: str,
    log_y: bool = False,
) -> str:
    series = [Series("tuned optimum", optimum, _RULE_COLORS["tuned optimum"], dashed=True)]
    for i, rule in enumerate(r for r in rules if not r.seed):
        series.append(Series(rule.label, tuple(values(rule)), _CANDIDATE_COLORS[i % 3]))
    for rule in (r for r in rules if r.seed):
        series.append(Series(rule.label, tuple(values(rule)), _RULE_COLORS.get(rule.name, PALETTE[5]), dashed=True))
    if not any(s.points for s in series):
        return _note(f"{title}: nothing to draw")
    return line_chart(series, title=title, x_label="width", y_label=y_label, log_x=True, log_y=log_y,
                      x_ticks=widths, dots=True)


def _group_table(rules: list[RuleWidths], widths: list[int]) -> str:
    """Every group's (lr, weight decay) of each drawn rule at each width, the power law of width
    each follows, and the gap at each width (with its CI over seeds where there are several)."""
    from optforge.tasks.adapters import SCALING_GROUPS

    head = "".join(f"<th>{e(h)}</th>" for h in ("rule", "group", "lr", "weight decay",
                                                  *(f"width {w}: lr / wd" for w in widths)))
    rows = []
    for rule in rules:
        at = {w.width: w for w in rule.widths}
        for i, group in enumerate(SCALING_GROUPS):
            cells = [rule.label if i == 0 else "", group, law_text(rule.values(group, 0)),
                     law_text(rule.values(group, 1))]
            for w in widths:
                lr, wd = at[w].groups.get(group, (None, None)) if w in at else (None, None)
                cells.append("-" if lr is None or wd is None else f"{lr:.3g} / {wd:.3g}")
            rows.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
        gaps = [_gap_text(at.get(w)) for w in widths]
        rows.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in ("", "gap (nats)", "", "", *gaps)) + "</tr>")
    return (_note("each rule's learning rate and weight decay per parameter group at each scored width, "
                  "the power law of width each follows (least squares over those widths), and its gap")
            + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _gap_text(result: WidthResult | None) -> str:
    if result is None:
        return "-"
    if result.gap is None:
        return result.status
    ci = f" [{result.gap_ci[0]:+.3f}, {result.gap_ci[1]:+.3f}]" if result.gap_ci else ""
    return f"{result.gap:+.3f}{ci} (tier {result.tier})"


def _against_mup(rules: list[RuleWidths]) -> str:
    """For each new rule, where it sets a group's values otherwise than the muP seed."""
    from optforge.tasks.adapters import SCALING_GROUPS

    mup = next((r for r in rules if r.seed and r.name == MUP), None)
    if mup is None:
        return ""
    items = []
    for rule in (r for r in rules if not r.seed):
        found = differences(rule, mup, SCALING_GROUPS)
        said = "; ".join(found) if found else "sets every group's lr and weight decay as muP does"
        items.append(f"<li><code>{e(rule.label)}</code>: {e(said)}</li>")
    return (_note("where each new rule departs from the muP seed, group by group (ratios at the widths both "
                  "were scored at; the power law of width of each)") + f"<ul>{''.join(items)}</ul>")


def _curves(view: ArchiveView, new_ranked: list[CandidateRow]) -> str:
    if not new_ranked:
        return _note("no new candidate has a score yet: nothing to compare with AdamW and Lion")
    parts = [
        _note(
            "mean held-out metric over seeds at each of the checkpoints, each at its own best "
            "learning rate; tier 2 are the held-out tasks (the tier-1 leaders run them)"
        )
    ]
    def charts(tier: int) -> list[str]:
        top = curve_candidates(view, new_ranked, tier, CURVE_CANDIDATES)
        return [_curve_chart(p) for p in curve_panels(view, top, tier)]

    return "".join(parts) + _by_tier(((2, "held-out tasks"), (1, "the screen")), charts, "curves")


def _by_tier(tiers: tuple[tuple[int, str], ...], charts: Callable[[int], list[str]], what_charts: str) -> str:
    """Each tier in turn: its heading and charts, or a note when no new candidate has any there."""
    parts = []
    for tier, what in tiers:
        drawn = charts(tier)
        if not drawn:
            parts.append(_note(f"tier {tier} ({what}): no new candidate has {what_charts} at this tier"))
            continue
        parts.append(f'<h3>tier {tier}: {e(what)}</h3><div class="charts">{"".join(drawn)}</div>')
    return "".join(parts)


def _curve_chart(panel: CurvePanel) -> str:
    series = []
    for i, (label, curve) in enumerate(panel.curves.items()):
        n = max(len(curve) - 1, 1)
        points = tuple((k / n, v) for k, v in enumerate(curve) if math.isfinite(v))
        color = {"tuned AdamW": PALETTE[0], "Lion": PALETTE[4]}.get(label, _CANDIDATE_COLORS[i % 5])
        series.append(Series(label, points, color, dashed=label in ("tuned AdamW", "Lion")))
    chart = line_chart(
        series,
        title=f"{panel.task} (tier {panel.tier})",
        x_label="fraction of the training budget",
        y_label=f"held-out {panel.metric or 'metric'}",
        log_y=True,
    )
    missing = _note("not drawn: " + "; ".join(panel.missing)) if panel.missing else ""
    return f"<div>{chart}{missing}</div>"


def _llm_cost(view: ArchiveView) -> str:
    points = llm_cost_over_time(view)
    if not points:
        return _note("no LLM calls recorded in this campaign (LLM cost $0)")
    figures = llm_figures(view.llm_calls)
    errors = figures["llm_errors"]
    if cost_unknown(figures["llm_calls"] - errors, figures["llm_unpriced"]):
        return _note(
            f"LLM cost unknown: no price for this model ({len(view.llm_calls)} calls, {errors} "
            "errors); the calls' tokens are below"
        )
    chart = line_chart(
        [Series("cumulative cost", tuple(points), PALETTE[5])],
        title=f"LLM cost: ${points[-1][1]:.4f} over {len(view.llm_calls)} calls ({errors} errors)",
        x_label="minutes since the first candidate",
        y_label="USD (cumulative)",
        step=True,
    )
    unpriced = sum(1 for c in view.llm_calls if c.cost_usd is None)
    return chart + (
        _note(f"{unpriced} calls had no known price and count as $0") if unpriced else ""
    )


def _llm_calls(view: ArchiveView) -> str:
    """The latest calls: tokens, latency and what each came to; the totals over all of them.
    Reasons and errors came from a model or a server: escaped like everything else."""
    numbered = view.numbered_calls()
    shown = numbered[-REPORT_CALLS:]
    head = "".join(
        f"<th>{h}</th>" for h in ("#", "time", "model", "tokens in", "tokens out", "latency", "outcome")
    )
    rows = []
    for n in shown:
        call = n.call
        bad = outcome(call) in ("rejected", "error")
        said = e(outcome_text(call, view.candidates))
        cells = [
            str(n.seq),
            e(time_text(call.created_at)),
            e(call.model),
            f"{call.tokens_in:,}",
            f"{call.tokens_out:,}",
            f"{call.latency_s:.2f}s",
            f'<span class="bad">{said}</span>' if bad else said,
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    hidden = len(numbered) - len(shown)
    more = (
        _note(f"{hidden} earlier calls are not shown; `optforge llm calls DIR` lists every call")
        if hidden
        else ""
    )
    return (
        f"<p>{e(totals_text(view.llm_calls))}</p>"
        f'<table class="calls"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        + more
        + _note("`optforge llm calls DIR --seq N` prints call N's prompt and reply")
    )


# -- the top table and the lineage --------------------------------------------------------------


def _top_table(view: ArchiveView, rows: list[CandidateRow]) -> str:
    if not rows:
        return _note("the archive holds no candidates")
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "#",
            "id",
            "name",
            "tier 2 (held out) [95% CI]",
            "tier 1 [95% CI]",
            "tier",
            "status",
            "proposer",
        )
    )
    body = "".join(_top_row(view, rank, row) for rank, row in enumerate(rows, 1))
    return f'<table class="top"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _top_row(view: ArchiveView, rank: int, row: CandidateRow) -> str:
    status_class = "" if row.status == "ok" else ' class="bad"'
    name = row.name + (" (seed)" if row.is_seed else "")
    cells = [
        str(rank),
        f"<code>{e(row.id[:12])}</code>",
        e(name),
        e(score_text(row.tier2_score, row.tier2_ci)),
        e(score_text(row.tier1_score, row.tier1_ci)),
        str(row.tier) if row.tier >= 0 else "-",
        f"<span{status_class}>{e(row.status)}</span>",
        e(row.proposer),
    ]
    main_row = "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    return (
        main_row
        + f'<tr class="more"><td colspan="{len(cells)}">{_code_details(view, row)}</td></tr>'
    )


def _code_details(view: ArchiveView, row: CandidateRow) -> str:
    candidate = view.candidates[row.id]
    parts = [f"<details><summary>code</summary><pre>{e(candidate.source)}</pre></details>"]
    label, said = idea_of(candidate)  # an LLM's stated idea, or the mutation applied
    if candidate.thought and said:
        parts.append(f"<details><summary>{e(label)}</summary><p>{e(said)}</p></details>")
    batching = latest_batching(view.evaluations.get(row.id, ()))
    if batching:
        parts.append(f'<p class="note">batching, {e(batching)}</p>')
    if candidate.parent_ids:
        parent = view.candidates[candidate.parent_ids[0]]
        lines = unified_diff(parent, candidate)
        diff = "\n".join(_diff_line(line) for line in lines) or e("(no differences)")
        parts.append(
            f"<details><summary>diff against {e(parent.name)}</summary><pre>{diff}</pre></details>"
        )
    return "".join(parts)


def _diff_line(line: str) -> str:
    css = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "")
    if line.startswith(("+++", "---")):
        css = ""
    return f'<span class="{css}">{e(line)}</span>' if css else e(line)


def _best_lineage(view: ArchiveView, new_ranked: list[CandidateRow]) -> str:
    if not new_ranked:
        return _note("no new candidate has a score yet")
    return f'<ul class="tree">{_tree_item(lineage(view, new_ranked[0].id))}</ul>'


def _tree_item(node: LineageNode) -> str:
    r = node.row
    status = "" if r.status == "ok" else f' <span class="bad">{e(r.status)}</span>'
    repeat = ' <span class="note">(ancestry shown above)</span>' if node.repeat else ""
    label = (
        f"<code>{e(r.id[:12])}</code> {e(r.name)} {e(score_text(r.score))}"
        f"{e(f' (tier {r.score_tier})' if r.score_tier else '')}{status} "
        f'<span class="note">{e(r.proposer)}, generation {r.generation}</span>{repeat}'
    )
    parents = "".join(_tree_item(p) for p in node.parents)
    return f"<li>{label}" + (f'<ul class="tree">{parents}</ul>' if parents else "") + "</li>"


__all__ = ["build_report"]
