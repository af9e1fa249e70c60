"""A campaign's summary as plain text: the lines `optforge status`, the end-of-run report, the live
display and the HTML report all show. Rendering only: the figures come from the summary."""

from __future__ import annotations

from collections.abc import Mapping

from optforge.agent.campaign.summary import CampaignSummary, CandidateRow
from optforge.tasks.kinds import KINDS, kind_spec, reference_label

# Statuses that are not failures: "ok", and "pending" (stored, not evaluated yet).
NOT_FAILURES = ("ok", "pending")


def evaluation_of(kind: str) -> str:
    """How `kind` is scored past tier 0 ("proxy", "preference", "scaling"); "proxy" for a kind
    this version does not know (older archives were all scored on the proxy tasks)."""
    return kind_spec(kind).evaluation if kind in KINDS else "proxy"


def score_text(score: float | None, ci: tuple[float, float] | None = None) -> str:
    if score is None:
        return "-"
    return f"{score:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{score:.3f}"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = max(int(round(seconds)), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def failures_text(statuses: Mapping[str, int]) -> str:
    """Failure statuses, most frequent first: "failed_tier0 12, diverged 3" (or "none")."""
    failed = [(s, n) for s, n in statuses.items() if s not in NOT_FAILURES and n]
    failed.sort(key=lambda item: (-item[1], item[0]))  # ties: alphabetical, stable
    return ", ".join(f"{s} {n}" for s, n in failed) or "none"


def outcomes_text(statuses: Mapping[str, int]) -> str:
    """Every status with its count, "ok" first, then failures, then "pending"."""
    order = {"ok": 0, "pending": 2}
    items = sorted(
        ((s, n) for s, n in statuses.items() if n), key=lambda i: (order.get(i[0], 1), -i[1], i[0])
    )
    return ", ".join(f"{s} {n}" for s, n in items) or "none yet"


def shows_llm(proposer: str, llm_calls: int) -> bool:
    """LLM counters are noise for an offline campaign: show them when an LLM is (or was) in use."""
    return llm_calls > 0 or proposer.startswith("llm") or proposer == "mix"


def llm_text(s: CampaignSummary, short: bool = False) -> str:
    """"9 calls, 2 errors, 3 rejected replies, 28,000 tokens in / 2,800 out, median latency 1.4s,
    $0.0123"; `short` (the one-line progress log) keeps calls, errors, rejected and the cost."""
    cost = cost_text(s.llm_cost_usd, s.llm_calls - s.llm_errors, s.llm_unpriced)
    if short:
        return f"{s.llm_calls} calls, {s.llm_errors} errors, {s.llm_rejected} rejected, {cost}"
    return (
        f"{s.llm_calls} calls, {s.llm_errors} errors, {s.llm_rejected} rejected replies, "
        f"{s.llm_tokens_in:,} tokens in / {s.llm_tokens_out:,} out, "
        f"median latency {latency_text(s.llm_latency_median_s)}, {cost}"
    )


def cost_text(cost_usd: float, answered: int, unpriced: int) -> str:
    """The LLM cost, saying so when it is not known: a local server's model has no price, and
    "$0.0000" would claim it was free."""
    if cost_unknown(answered, unpriced):
        return "cost unknown (no price for this model)"
    if unpriced:
        return f"${cost_usd:.4f} ({unpriced} calls with no known price count as $0)"
    return f"${cost_usd:.4f}"


def cost_unknown(answered: int, unpriced: int) -> bool:
    """No call that got a reply had a known price (a local server's model, say)."""
    return answered > 0 and unpriced >= answered


def latency_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.2f}s" if seconds < 1 else f"{seconds:.1f}s"


def best_text(best: CandidateRow | None) -> str:
    """The best new candidate, verified first: its score, from the tier it says."""
    if best is None or best.score is None:
        return "-"
    return f"{score_text(best.score, best.score_ci)} {best.id[:12]} {best.name} (tier {best.score_tier})"



def state_text(summary: CampaignSummary) -> str:
    if summary.stopped_reason is None:
        return "running, or killed (no stop recorded since the last start)"
    if summary.stopped_reason == "interrupted":
        return "interrupted"
    return f"stopped: {summary.stopped_reason}"


def report_lines(s: CampaignSummary) -> list[str]:
    lines = bar_lines(s)
    lines.append(champion_text(s))
    lines.append(
        f"candidates: {s.done} new, {s.deduplicated} deduplicated (reused an evaluation), "
        f"{s.duplicate_sources} duplicate sources skipped, {s.proposal_failures} failed proposals"
    )
    lines.append(f"outcomes: {outcomes_text(s.statuses)}")
    if shows_llm(s.proposer, s.llm_calls):
        lines.append(f"llm: {llm_text(s)}")
    lines.append(f"archive: {s.archive}")
    return lines


def bar_lines(s: CampaignSummary) -> list[str]:
    """The best new candidate against tuned AdamW, then against the best tuned baseline on tier 2
    (paired seed by seed); one line each, and never a number that was not measured."""
    best, ref = s.best, reference_label(s.kind)
    if best is None or best.score is None:
        return [f"best: no new candidate scored yet (1.0 = as good as {ref})"]
    who = f"({best.id[:12]} {best.name})"
    if best.verified:
        first = (
            f"best new: {score_text(best.tier2_score, best.tier2_ci)} x {ref} on held-out "
            f"tier 2 {who}; tier 1: {score_text(best.tier1_score)}"
        )
    else:
        first = (
            f"best new: {score_text(best.tier1_score, best.tier1_ci)} x {ref} on tier 1 only, "
            f"not verified on held-out tier 2 {who}"
        ) + _seed_on_tier1(s, best)
    return [first, _baseline_line(s)]


def _seed_on_tier1(s: CampaignSummary, best: CandidateRow) -> str:
    seeds = [r for r in s.baselines.values() if r.tier1_score is not None]
    top = max(seeds, key=lambda r: r.tier1_score or 0.0, default=None)
    if top is None or top.tier1_score is None or best.tier1_score is None:
        return ""
    if top.tier1_score > best.tier1_score:
        # Say so plainly: a short campaign often ends with every new candidate behind a seed.
        return f"; below the best seed on tier 1, {top.name} ({top.tier1_score:.3f})"
    return f"; the best seed on tier 1: {top.name} ({top.tier1_score:.3f})"


def _baseline_line(s: CampaignSummary) -> str:
    bar, evaluation = s.bar, evaluation_of(s.kind)
    # A scaling rule's baselines (muP, ...) are rules, not tuned: the rule sets the hyperparameters.
    baseline = "baseline rule" if evaluation == "scaling" else "tuned baseline"
    if bar is None or bar.baseline is None:
        return (
            f"against the best {baseline} on tier 2: no baseline was evaluated on tier 2; set "
            "cascade.seeds_tier2 = true to evaluate the seeds there (minutes each)"
        )
    base = bar.baseline
    head = (
        f"against the best {baseline} on tier 2, {base.name} "
        f"({score_text(base.tier2_score)} x {reference_label(s.kind)}): "
    )
    if bar.candidate is None or not bar.candidate.verified:
        return head + "no comparison: the best new candidate has no tier-2 result"
    if bar.ratio is None or bar.ci is None:
        return head + "no comparison: their tier-2 results cannot be paired (other tasks or seeds)"
    lo, hi = bar.ci
    verdict = (
        "better beyond seed noise"
        if lo > 1.0
        else "worse beyond seed noise"
        if hi < 1.0
        else "level within seed noise"
    )
    if evaluation == "preference":  # higher is better
        ratio = f"the candidate's area / {base.name}'s"
    else:
        ratio = f"{base.name}'s held-out loss / the candidate's"
    unit = "width" if evaluation == "scaling" else "task"  # a scaling task has one result per width
    return head + (
        f"{score_text(bar.ratio, bar.ci)} ({ratio}, paired "
        f"over {bar.seeds} seeds on {bar.tasks} {unit}{'' if bar.tasks == 1 else 's'}): {verdict}"
    )


def champion_text(s: CampaignSummary) -> str:
    """Who holds the title (the best tier-2 score among new candidates) and by how much."""
    c, lead = s.champion, s.champion_lead
    if c is None or lead is None:
        return "champion: none yet (no new candidate has passed held-out tier 2)"
    text = f"champion: {c.id[:12]} {c.name}, {score_text(c.tier2_score, c.tier2_ci)} on tier 2"
    if lead.runner_up is None:
        return text + " (the only new candidate verified on tier 2)"
    runner = f"runner-up {lead.runner_up[:12]} ({score_text(lead.runner_up_score)})"
    if lead.ratio is None or lead.ci is None:
        return text + f"; {runner}: their tier-2 results cannot be paired"
    noise = "beyond seed noise" if lead.significant else "within seed noise: a tie"
    return text + f"; ahead of the {runner} by {score_text(lead.ratio, lead.ci)}, {noise}"
