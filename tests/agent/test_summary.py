"""summarize(): a campaign's state read back from a real archive, built record by record."""

from __future__ import annotations

import pathlib
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest

from optforge.agent.campaign.summary import elapsed_s, ranked_rows, rows, summarize
from optforge.agent.config import CampaignConfig
from optforge.archive import (
    ArchiveStore,
    CandidateRecord,
    EvaluationRecord,
    EventRecord,
    LLMCallRecord,
)

BUDGET = 10


def _candidate(name: str, at: float, proposer: str = "mutate", parents=()) -> CandidateRecord:
    source = f"def update(grad, param, state, step, hp):\n    return -0.1 * grad, state  # {name}\n"
    # The name goes in a string so that normalization (which drops comments) keeps ids distinct.
    source += f"NAME = {name!r}\n"
    return CandidateRecord.new(
        source, "optimizer", name, parent_ids=parents, proposer=proposer, created_at=at
    )


def _eval(cid: str, tier: int, at: float, score=None, status="ok", ci=None, reused=None):
    return EvaluationRecord(
        cid, tier, status, score=score, score_ci=ci, reused_from=reused, created_at=at
    )


def build_campaign(path: pathlib.Path) -> dict[str, str]:
    """Two runs: the first (t=100..150) seeds AdamW and Lion and stores five children; the second
    (t=200..230) stores one more. Returns name -> candidate id."""
    config = CampaignConfig().model_dump(mode="json")
    config["budget"]["max_candidates"] = BUDGET
    ids: dict[str, str] = {}
    with ArchiveStore.create(path, config) as store:

        def add(name: str, at: float, proposer: str = "mutate", calls=()) -> str:
            record = _candidate(name, at, proposer)
            store.add_candidate(record, calls)
            ids[name] = record.id
            return record.id

        store.add_event(EventRecord("start", {"proposer": "llm:test-model"}, created_at=100.0))
        adamw, lion = add("adamw", 101.0, "seed"), add("lion", 102.0, "seed")
        store.add_evaluation(_eval(adamw, 1, 103.0, 1.0, ci=(0.98, 1.02)))
        store.add_evaluation(_eval(lion, 1, 104.0, 0.909, ci=(0.88, 0.93)))
        call = LLMCallRecord(None, "test-model", 10, 5, 0.25, 1.0, created_at=105.0)
        tier2 = add("tier2_drop", 110.0, calls=[call])  # great on tier 1, worse held out
        store.add_evaluation(_eval(tier2, 0, 111.0))
        store.add_evaluation(_eval(tier2, 1, 112.0, 1.3, ci=(1.2, 1.4)))
        store.add_evaluation(_eval(tier2, 2, 113.0, 0.95, ci=(0.9, 1.0)))
        steady = add("steady", 120.0)
        store.add_evaluation(_eval(steady, 0, 121.0))
        store.add_evaluation(_eval(steady, 1, 122.0, 1.05, ci=(1.01, 1.09)))
        broken = add("broken", 125.0)
        store.add_evaluation(_eval(broken, 0, 126.0, status="failed_tier0"))
        twin = add("twin", 130.0)  # behaves like `steady`: its evaluations are copies
        store.add_evaluation(_eval(twin, 0, 131.0, reused=steady))
        store.add_evaluation(_eval(twin, 1, 132.0, 1.05, ci=(1.01, 1.09), reused=steady))
        blowup = add("blowup", 135.0)  # a failed tier 2 leaves it unranked
        store.add_evaluation(_eval(blowup, 1, 136.0, 1.4, ci=(1.3, 1.5)))
        store.add_evaluation(_eval(blowup, 2, 137.0, status="diverged"))
        store.add_llm_call(LLMCallRecord(None, "test-model", error="timeout", created_at=140.0))
        store.add_event(EventRecord("proposal_failed", {"proposer": "llm", "error": "x"}, 140.0))
        store.add_event(EventRecord("duplicate_source", {"candidate_id": steady}, 141.0))
        store.add_event(EventRecord("champion", _champion(tier2), created_at=142.0))
        store.add_event(EventRecord("stop", {"reason": "interrupted by user"}, created_at=150.0))
        # Second run, after a 50 s gap that must not count.
        store.add_event(EventRecord("resume", {"proposer": "mutate"}, created_at=200.0))
        add("late", 210.0)
        store.add_event(EventRecord("duplicate_source", {"candidate_id": twin}, 220.0))
        store.add_event(EventRecord("champion", _champion(steady), created_at=230.0))
    return ids


def _champion(cid: str) -> dict[str, object]:
    return {"candidate_id": cid, "previous": None, "tier": 1, "ratio": 1.05, "ci": [1.01, 1.09]}


@pytest.fixture
def archive(tmp_path) -> Iterator[tuple[ArchiveStore, dict[str, str]]]:
    ids = build_campaign(tmp_path / "run" / "archive.sqlite")
    store = ArchiveStore.open(tmp_path / "run" / "archive.sqlite")
    yield store, ids
    store.close()


def test_rows_report_the_deepest_tier_reached_in_storage_order(archive):
    store, ids = archive
    by_name = {r.name: r for r in rows(store)}
    assert [r.name for r in rows(store)] == list(ids)
    drop = by_name["tier2_drop"]
    assert (drop.tier, drop.status, drop.score) == (2, "ok", 0.95)  # ranked by held-out tier 2
    assert (drop.tier1_score, drop.tier1_ci, drop.tier2_ci) == (1.3, (1.2, 1.4), (0.9, 1.0))
    assert (by_name["broken"].tier, by_name["broken"].status) == (0, "failed_tier0")
    assert (by_name["blowup"].status, by_name["blowup"].score) == ("diverged", None)
    assert (by_name["late"].status, by_name["late"].tier, by_name["late"].score) == (
        "pending",
        -1,
        None,
    )
    assert by_name["twin"].reused_from == ids["steady"]
    assert by_name["adamw"].is_seed and not by_name["steady"].is_seed


def test_ranking_is_verified_first_and_puts_unscored_last(archive):
    store, _ = archive
    names = [r.name for r in ranked_rows(rows(store))]
    # tier2_drop's held-out 0.95 ranks above every tier-1-only score (they run higher); steady and
    # twin tie at 1.05 and keep storage order; blowup failed tier 2, so it is unranked.
    assert names[:5] == ["tier2_drop", "steady", "twin", "adamw", "lion"]
    assert set(names[5:]) == {"broken", "blowup", "late"}


def test_ranking_by_tier_1_ignores_tier_2(archive):
    store, _ = archive
    names = [r.name for r in ranked_rows(rows(store), by="tier1")]
    assert names[:6] == ["blowup", "tier2_drop", "steady", "twin", "adamw", "lion"]
    assert set(names[6:]) == {"broken", "late"}


def test_summarize_counts_outcomes_dedupes_failures_and_llm_use(archive):
    store, ids = archive
    s = summarize(store, top=3)
    assert (s.kind, s.proposer, s.n_seeds, s.done, s.budget) == ("optimizer", "mutate", 2, 6, 10)
    assert s.statuses == Counter({"ok": 3, "failed_tier0": 1, "diverged": 1, "pending": 1})
    assert (s.deduplicated, s.duplicate_sources, s.proposal_failures) == (1, 2, 1)
    assert (s.llm_calls, s.llm_errors, s.llm_cost_usd) == (2, 1, pytest.approx(0.25))
    # Tokens over every call; latency over the calls that got a reply (a timeout's is the wait).
    assert (s.llm_rejected, s.llm_tokens_in, s.llm_tokens_out) == (0, 10, 5)
    assert (s.llm_latency_median_s, s.llm_unpriced) == (1.0, 0)
    assert [r.name for r in s.top] == ["tier2_drop", "steady", "twin"]
    assert set(s.baselines) == {"adamw", "lion"} and s.baselines["lion"].score == 0.909
    assert s.best is not None and s.best.id == ids["tier2_drop"] and s.best.verified
    assert s.bar is not None and s.bar.baseline is None  # no seed was evaluated on tier 2
    assert s.archive == store.path and not s.budget_exhausted


def test_champion_is_the_best_on_tier_2_whatever_an_older_rule_recorded(archive):
    store, ids = archive
    # The archive's last "champion" event (written under the rule before issue 13) names steady,
    # which was never verified on tier 2: the summary applies the tier-2 rule to the records.
    s = summarize(store)
    assert s.champion is not None and s.champion.id == ids["tier2_drop"]
    assert s.champion_lead is not None and s.champion_lead.runner_up is None


def test_elapsed_adds_up_each_run_up_to_its_last_record(archive):
    store, _ = archive
    # Run 1: 100 -> 150 (its stop event); run 2: 200 -> 230 (its last event). The gap is idle.
    assert summarize(store).elapsed_s == pytest.approx(50.0 + 30.0)


def test_elapsed_of_a_run_with_no_record_after_its_start_is_zero():
    events = [EventRecord("start", created_at=10.0), EventRecord("resume", created_at=50.0)]
    assert elapsed_s(events, [10.0, 12.5, 50.0]) == pytest.approx(2.5)


def test_stopped_reason_follows_the_latest_run(archive):
    store, _ = archive
    assert summarize(store).stopped_reason is None  # resumed, nothing recorded an end since
    store.add_event(EventRecord("interrupted", created_at=240.0))
    assert summarize(store).stopped_reason == "interrupted"
    store.add_event(EventRecord("resume", {"proposer": "mix"}, created_at=300.0))
    store.add_event(EventRecord("stop", {"reason": "budget exhausted"}, created_at=310.0))
    s = summarize(store)
    assert (s.stopped_reason, s.proposer) == ("budget exhausted", "mix")
    assert s.elapsed_s == pytest.approx(50.0 + 40.0 + 10.0)


def test_an_empty_archive_summarizes_without_scores(tmp_path):
    config = CampaignConfig().model_dump(mode="json")
    with ArchiveStore.create(tmp_path / "a.sqlite", config) as store:
        s = summarize(store)
    assert (s.done, s.n_seeds, s.proposer, s.budget) == (0, 0, "", 200)
    assert (s.champion, s.best, s.top, s.stopped_reason, s.elapsed_s) == (None, None, (), None, 0.0)


# -- the bar: the best against tuned AdamW and against the best tuned baseline, on tier 2 -------


def _finals_eval(cid: str, tier: int, score: float, scale: float, at: float, seed: int):
    rng = np.random.default_rng(seed)
    tasks = tuple(
        {
            "name": n,
            "status": "ok",
            "metric": "loss",
            "seed_finals": list(scale * (1 + 0.01 * rng.standard_normal(4))),
        }
        for n in ("a", "b", "c")
    )
    versions = {"a": "v1", "b": "v1", "c": "v1"}
    return EvaluationRecord(
        cid, tier, "ok", score=score, score_ci=(score - 0.01, score + 0.01), tasks=tasks, seeds=4,
        task_versions=versions, created_at=at,
    )  # fmt: skip


def build_verified_campaign(path: pathlib.Path, seeds_tier2: bool = True) -> dict[str, str]:
    """Seeds adamw and lion (on tier 2 when `seeds_tier2`), and three new candidates, two of them
    verified on tier 2 (per-seed finals: `paired` vs `lion` is 0.95 / 0.9 = 1.056)."""
    config = CampaignConfig().model_dump(mode="json")
    ids: dict[str, str] = {}
    with ArchiveStore.create(path, config) as store:
        store.add_event(EventRecord("start", {"proposer": "mutate"}, created_at=1.0))
        plan = [  # name, proposer, tier-1 score, (tier-2 score, final scale) or None
            ("adamw", "seed", 1.0, (1.0, 1.0) if seeds_tier2 else None),
            ("lion", "seed", 1.05, (1.05, 0.95) if seeds_tier2 else None),
            ("screen_star", "mutate", 1.5, None),  # the tier-1 leader, never verified
            ("paired", "mutate", 1.2, (1.11, 0.9)),
            ("worse", "mutate", 1.3, (0.98, 1.02)),
        ]
        for i, (name, proposer, tier1, tier2) in enumerate(plan):
            record = _candidate(name, 10.0 + i, proposer)
            store.add_candidate(record)
            ids[name] = record.id
            store.add_evaluation(
                _eval(record.id, 1, 20.0 + i, tier1, ci=(tier1 - 0.02, tier1 + 0.02))
            )
            if tier2 is not None:
                store.add_evaluation(
                    _finals_eval(record.id, 2, tier2[0], tier2[1], 30.0 + i, seed=i)
                )
    return ids


def test_the_bar_pairs_the_best_with_the_best_tuned_baseline_on_tier_2(tmp_path):
    ids = build_verified_campaign(tmp_path / "a.sqlite")
    with ArchiveStore.open(tmp_path / "a.sqlite") as store:
        s = summarize(store)
    assert [r.name for r in s.top[:3]] == ["paired", "lion", "adamw"]  # verified first
    assert s.best is not None and s.best.id == ids["paired"]
    assert s.champion is not None and s.champion.id == ids["paired"]
    lead = s.champion_lead
    assert lead is not None and lead.runner_up == ids["worse"] and lead.significant
    bar = s.bar
    assert bar is not None and bar.baseline is not None and bar.baseline.name == "lion"
    assert bar.ratio == pytest.approx(0.95 / 0.9, rel=0.01)
    assert bar.ci is not None and 1.0 < bar.ci[0] < bar.ratio < bar.ci[1]
    assert (bar.seeds, bar.tasks) == (4, 3)


def test_the_bar_has_no_number_when_no_baseline_ran_tier_2(tmp_path):
    build_verified_campaign(tmp_path / "a.sqlite", seeds_tier2=False)
    with ArchiveStore.open(tmp_path / "a.sqlite") as store:
        s = summarize(store)
    assert s.bar is not None and s.bar.baseline is None and s.bar.ratio is None
