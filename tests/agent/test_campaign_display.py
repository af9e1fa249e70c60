"""The campaign display: plain lines off a terminal, a live panel on one, and the final report."""

from __future__ import annotations

import dataclasses
import io
import pathlib
from collections import Counter

import pytest
from rich.console import Console

from optforge.agent.campaign.progress import Progress
from optforge.agent.campaign.summary import CampaignSummary, CandidateRow, summarize
from optforge.agent.campaign.summary_text import bar_lines, llm_text
from optforge.agent.cli.campaign_display import LiveDisplay, print_status, print_summary
from optforge.archive import ArchiveStore, EventRecord
from tests.agent.test_summary import build_campaign, build_verified_campaign

BEST = CandidateRow(
    id="3fa9c2e1aaaa" + "0" * 52, name="adam_tanh", kind="optimizer", proposer="llm", island=0,
    generation=1, parent_ids=(), status="ok", tier=1, score=1.072, tier1_score=1.072,
    tier1_ci=(1.03, 1.11), tier2_score=None, tier2_ci=None, reused_from=None, is_seed=False,
)
LOOP_FIELDS = ("phase", "generation", "elapsed_s", "eta_s")


def _console(terminal: bool = False) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=160, force_terminal=terminal), buffer


def _progress(**changes: object) -> Progress:
    """A snapshot: the summary's figures, with `changes` to them or to the loop's own fields."""
    loop = {name: changes.pop(name) for name in LOOP_FIELDS if name in changes}
    summary = CampaignSummary(
        archive=pathlib.Path("runs/demo/archive.sqlite"), kind="optimizer",
        proposer="llm:gpt-4o-mini", n_seeds=8, done=12, budget=200,
        statuses=Counter({"ok": 9, "failed_tier0": 2, "diverged": 1}), deduplicated=0,
        duplicate_sources=0, proposal_failures=0, llm_calls=14, llm_errors=2, llm_cost_usd=0.0123,
        champion=None, top=(), best=BEST, llm_rejected=3, llm_tokens_in=28_000, llm_tokens_out=2_800,
        llm_latency_median_s=1.44,
    )
    defaults = {"phase": "tier 1: 3fa9c2e1 adam_tanh", "elapsed_s": 192.0, "eta_s": 3000.0}
    return Progress(dataclasses.replace(summary, **changes), **{**defaults, **loop})  # type: ignore[arg-type]


def test_plain_progress_line_names_count_best_failures_llm_and_eta():
    console, out = _console()
    with LiveDisplay(console) as display:  # not a terminal: plain lines
        display.update(_progress())
    line = out.getvalue().strip()
    assert line.startswith("[12/200] best 1.072 [1.030, 1.110] 3fa9c2e1aaaa adam_tanh")
    assert "failures: failed_tier0 2, diverged 1" in line
    assert "llm: 14 calls, 2 errors, 3 rejected, $0.0123" in line  # the one-line log keeps it short
    assert "elapsed 3m12s, eta 50m00s" in line and line.endswith("tier 1: 3fa9c2e1 adam_tanh")


def test_plain_mode_prints_a_progress_line_only_when_something_changed():
    console, out = _console()
    with LiveDisplay(console, live=False) as display:
        display.update(_progress())
        display.update(_progress())  # equal snapshot
        display.update(_progress(phase="tier 2: 77aa01 other", elapsed_s=200.0))  # phase only
        assert len(out.getvalue().splitlines()) == 1
        display.update(_progress(done=13))
        display.update(_progress(done=13, best=dataclasses.replace(BEST, score=1.2)))
        display.update(_progress(done=13, best=dataclasses.replace(BEST, score=1.2), phase="stopped: budget"))
    assert len(out.getvalue().splitlines()) == 4


def test_plain_log_lines_print_as_is_and_never_crash_on_missing_values():
    console, out = _console()
    with LiveDisplay(console, live=False) as display:
        display.log("[red]stored[/red] 3fa9c2e1 [tier 0 ok]")
        display.update(
            _progress(best=None, eta_s=None, phase="", statuses={}, proposer="mutate", llm_calls=0)
        )
    first, second = out.getvalue().splitlines()
    assert first == "[red]stored[/red] 3fa9c2e1 [tier 0 ok]"
    assert second.startswith("[12/200] best - | failures: none")
    assert "eta ?" in second and "llm" not in second  # an offline proposer shows no LLM counters


def test_live_mode_renders_the_panel_and_logs_above_it():
    console, out = _console(terminal=True)
    display = LiveDisplay(console)
    assert display.live  # the default follows the console: a terminal here
    with display:
        display.log("seeded 8 baselines")
        display.update(_progress(deduplicated=3, duplicate_sources=4))
        display.update(_progress(best=None, eta_s=None, statuses={}))
    text = out.getvalue()
    assert "seeded 8 baselines" in text
    assert "12/200 candidates (+8 seeds)" in text and "3 reused evaluations" in text
    assert "optforge: optimizer campaign, proposer llm:gpt-4o-mini" in text
    assert "3 rejected replies, 28,000 tokens in / 2,800 out, median latency 1.4s, $0.0123" in text


def test_the_llm_cost_is_unknown_not_zero_when_no_answered_call_had_a_price():
    # A local server's model has no price: every call that got a reply (14 - 2 errors) is unpriced.
    local = _progress(llm_cost_usd=0.0, llm_unpriced=12).summary
    assert llm_text(local).endswith(", cost unknown (no price for this model)")
    assert llm_text(local, short=True) == "14 calls, 2 errors, 3 rejected, cost unknown (no price for this model)"
    mixed = _progress(llm_unpriced=4).summary
    assert llm_text(mixed).endswith(", $0.0123 (4 calls with no known price count as $0)")
    only_errors = _progress(llm_errors=14, llm_cost_usd=0.0, llm_latency_median_s=None).summary
    assert llm_text(only_errors).endswith(", median latency -, $0.0000")  # nothing answered: nothing spent


@pytest.fixture
def summary_store(tmp_path):
    path = tmp_path / "run" / "archive.sqlite"
    ids = build_campaign(path)
    with ArchiveStore.open(path) as store:
        yield store, ids


def test_summary_ranks_verified_first_and_gives_the_best_against_adamw(summary_store):
    store, ids = summary_store
    console, out = _console()
    print_summary(summarize(store, top=5), console)
    text = out.getvalue()
    assert "tier 1 [95% CI]" in text and "tier 2 [95% CI]" in text
    assert "verified on tier 2 first (by tier-2 score), then tier 1 only" in text
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert ids["tier2_drop"][:12] in rows[0] and "0.950 [0.900, 1.000]" in rows[0]
    assert ids["late"][:12] not in text  # only the top 5 rows
    best = (
        f"best new: 0.950 [0.900, 1.000] x tuned AdamW on held-out tier 2 "
        f"({ids['tier2_drop'][:12]} tier2_drop); tier 1: 1.300"
    )
    assert best in text
    assert (
        "against the best tuned baseline on tier 2: no baseline was evaluated on tier 2; set "
        "cascade.seeds_tier2 = true to evaluate the seeds there (minutes each)"
    ) in text
    assert "tier2_drop *" in text  # the champion is marked
    assert (
        f"champion: {ids['tier2_drop'][:12]} tier2_drop, 0.950 [0.900, 1.000] on tier 2 "
        "(the only new candidate verified on tier 2)"
    ) in text
    assert "1 deduplicated" in text and "2 duplicate sources" in text
    assert "outcomes: ok 3, diverged 1, failed_tier0 1, pending 1" in text
    assert (
        "llm: 2 calls, 1 errors, 0 rejected replies, 10 tokens in / 5 out, median latency 1.0s, $0.2500"
    ) in text
    assert f"archive: {store.path}" in text
    assert max(len(line) for line in text.splitlines()) <= 160 and "\x1b" not in text


def test_the_bar_against_the_best_tuned_baseline_is_paired_with_its_ci(tmp_path):
    path = tmp_path / "run" / "archive.sqlite"
    path.parent.mkdir()
    ids = build_verified_campaign(path)
    with ArchiveStore.open(path) as store:
        s = summarize(store)
    first, second = bar_lines(s)
    assert first.startswith("best new: 1.110 [1.100, 1.120] x tuned AdamW on held-out tier 2")
    assert second.startswith("against the best tuned baseline on tier 2, lion (1.050 x tuned AdamW): 1.0")
    assert second.endswith(
        "(lion's held-out loss / the candidate's, paired over 4 seeds on 3 tasks): "
        "better beyond seed noise"
    )
    console, out = _console()
    print_summary(s, console)
    assert f"ahead of the runner-up {ids['worse'][:12]} (0.980) by 1.1" in out.getvalue()
    assert "beyond seed noise" in out.getvalue()


def test_an_unverified_best_gets_no_tier_2_number(summary_store):
    store, ids = summary_store
    summary = summarize(store)
    assert summary.best is not None
    unverified = dataclasses.replace(summary.best, tier=1, score=1.3, tier2_score=None, tier2_ci=None)
    first, _ = bar_lines(dataclasses.replace(summary, best=unverified))
    assert first.startswith("best new: 1.300 [1.200, 1.400] x tuned AdamW on tier 1 only, not verified")
    assert first.endswith("; the best seed on tier 1: adamw (1.000)")


def test_a_best_new_candidate_behind_a_seed_is_called_out(summary_store):
    store, _ = summary_store
    summary = summarize(store)
    assert summary.best is not None
    behind = dataclasses.replace(
        summary.best, score=0.62, tier1_score=0.62, tier1_ci=None, tier2_score=None, tier2_ci=None
    )
    first, _ = bar_lines(dataclasses.replace(summary, best=behind))
    assert first.startswith("best new: 0.620 x tuned AdamW on tier 1 only")
    assert first.endswith("below the best seed on tier 1, adamw (1.000)")


def test_status_says_how_the_campaign_ended_and_how_to_resume(summary_store):
    store, _ = summary_store
    store.add_event(EventRecord("stop", {"reason": "max_wall_minutes reached"}))
    console, out = _console()
    print_status(summarize(store), console)
    text = out.getvalue()
    assert "state: stopped: max_wall_minutes reached" in text
    assert f"optforge resume {store.path.parent}" in text and "4 candidates left" in text


def test_status_gives_no_resume_hint_once_the_budget_is_spent(summary_store):
    store, _ = summary_store
    summary = dataclasses.replace(summarize(store), done=10)
    console, out = _console()
    print_status(summary, console)
    assert "optforge resume" not in out.getvalue()
    assert "state: running, or killed" in out.getvalue()
