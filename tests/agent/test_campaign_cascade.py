"""The campaign loop's cascade with evaluation faked (no sandbox): after every tier-1 result the
current tier-1 leaders are verified on tier 2, the champion follows the best tier-2 score, and an
archive made under the old rule (tier2_fraction, a weak champion) resumes into the new one."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

import pytest

from optforge.agent.campaign import cascade as cascade_module
from optforge.agent.campaign.directory import effective_config
from optforge.agent.campaign.loop import Campaign, CampaignParts
from optforge.agent.campaign.summary import summarize
from optforge.agent.config import CampaignConfig
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.proposers.base import Proposal, ProposalRequest
from optforge.archive import ArchiveStore, EvaluationRecord, EventRecord, TaskResult
from optforge.tasks.contracts import source_hash

# name -> (tier-1 score, tier-2 score), in the order proposed. The floor (tier2_min_score) is 1.0.
PLAN = {
    "a": (1.05, 1.00),
    "b": (1.20, 0.98),  # the screen's favourite, worse held out
    "c": (1.10, 1.04),  # never a tier-1 record-holder: the old rule never verified it
    "d": (0.90, 1.50),  # below the floor: never verified, whatever it would have scored
    "e": (1.30, 0.95),
}
TASKS = ("t1", "t2")


def _source(name: str) -> str:
    # The name is code, not a comment: normalization drops comments, and ids must differ.
    return f"NAME = {name!r}\n\n\ndef loss(logits, targets):\n    return logits.mean() * 0\n"


SCORES = {_source(name): scores for name, scores in PLAN.items()}


@dataclass
class FakeRunner:
    environment: dict[str, str]


class Scripted:
    """Proposes PLAN's candidates in order (each the child of the request's first parent)."""

    name = "scripted"

    def __init__(self) -> None:
        self.names = list(PLAN)

    def propose(self, request: ProposalRequest, rng: random.Random) -> Proposal:
        name = self.names.pop(0)
        return Proposal(_source(name), name, self.name, (request.parents[0].id,))


def _fake_tier0(source: str, kind: str, runner: Any, config: Any) -> EvaluationRecord:
    fingerprint = hashlib.sha256(source.encode()).hexdigest()
    return EvaluationRecord(source_hash(source), 0, "ok", fingerprint=fingerprint, batching="vmap")


def _fake_tasks(source: str, kind: str, tier: int, screened: EvaluationRecord, *rest: Any) -> EvaluationRecord:
    score = SCORES.get(source, (1.0, 1.0))[tier - 1]  # seeds: as good as AdamW
    # Per-seed finals that give this score against a reference final of 1.0, with a little noise.
    rng = random.Random(f"{source}:{tier}")
    tasks = [
        TaskResult(
            t, "ok", "loss", score=score, final=1 / score, reference_final=1.0,
            seed_finals=tuple((1 / score) * (1 + 0.005 * rng.gauss(0, 1)) for _ in range(4)),
        )
        for t in TASKS
    ]  # fmt: skip
    return EvaluationRecord(
        source_hash(source), tier, "ok", score=score, score_ci=(score * 0.99, score * 1.01), tasks=tasks,
        seeds=4, task_versions={t: "v1" for t in TASKS}, fingerprint=screened.fingerprint,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def fake_evaluation(monkeypatch):
    monkeypatch.setattr(cascade_module, "contract_rejection", lambda *args: None)
    monkeypatch.setattr(cascade_module, "run_tier0", _fake_tier0)
    monkeypatch.setattr(cascade_module, "evaluate_tasks", _fake_tasks)


def _config(top_k: int, budget: int = len(PLAN)) -> dict[str, Any]:
    config = CampaignConfig(kind="loss").model_dump(mode="json")
    config["budget"]["max_candidates"] = budget
    config["search"]["islands"] = 1
    config["llm"]["max_concurrency"] = 1
    config["cascade"]["tier2_top_k"] = top_k
    return config


def _run(store: ArchiveStore, config: CampaignConfig, tmp_path, proposer: Scripted) -> list[str]:
    logs: list[str] = []
    parts = CampaignParts(
        FakeRunner({}), BaselineCache(tmp_path / "cache"), proposer, on_log=logs.append
    )
    Campaign(store, config, parts).run()
    return logs


def _names(store: ArchiveStore) -> dict[str, str]:
    return {c.id: c.name for c in store.candidates()}


def _verified(store: ArchiveStore) -> list[str]:
    names = _names(store)
    return [names[e.candidate_id] for e in store.evaluations(tier=2)]


def test_every_candidate_that_enters_the_tier1_top_k_is_verified_as_it_lands(tmp_path):
    with ArchiveStore.create(tmp_path / "a.sqlite", _config(top_k=2)) as store:
        logs = _run(store, effective_config(store), tmp_path, Scripted())
        names = _names(store)
        # a leads alone, then b; c enters the top 2 behind b; d is below the floor; e leads.
        assert _verified(store) == ["a", "b", "c", "e"]
        cascade = {names[e.data["candidate_id"]]: e.data for e in store.events("cascade")}
        assert {n: (d["tier2"], d["tier1_rank"]) for n, d in cascade.items() if n in PLAN} == {
            "a": (True, 1), "b": (True, 1), "c": (True, 2), "d": (False, None), "e": (True, 1),
        }  # fmt: skip
        # The champion follows the best tier-2 score: a, then c; b's and e's screen scores count
        # for nothing, and each crowning is recorded once.
        champions = [names[e.data["candidate_id"]] for e in store.events("champion")]
        assert champions == ["a", "c"]
        last = store.events("champion")[-1].data
        assert last["tier"] == 2 and last["runner_up"] is not None and last["significant"]
        assert any(
            line.startswith("champion: ") and " c, 1.040 x tuned AdamW" in line for line in logs
        )
        s = summarize(store)
        assert s.champion is not None and s.champion.name == "c"
        assert s.best is not None and s.best.name == "c"  # verified first: c above e's 1.30


def test_an_archive_made_under_the_old_rule_resumes_and_verifies_the_current_leaders(tmp_path):
    # The config an archive stored before tier2_top_k existed: the old key, translated on reading.
    old = _config(top_k=0, budget=len(PLAN))
    del old["cascade"]["tier2_top_k"]
    old["cascade"]["tier2_fraction"] = 0.02
    with ArchiveStore.create(tmp_path / "a.sqlite", old) as store:
        config = effective_config(store)
        assert config.cascade.tier2_top_k == 5
        # The first run verifies record-holders only (a top 1, as "top 2% so far" did early on).
        first = config.model_copy(
            update={"cascade": config.cascade.model_copy(update={"tier2_top_k": 1})}
        )
        _run(store, first, tmp_path, Scripted())
        assert _verified(store) == ["a", "b", "e"]
        names = {n: i for i, n in _names(store).items()}
        # ...and the old rule's champion, promoted on tier 1, was b (0.98 held out).
        store.add_event(EventRecord("champion", {"candidate_id": names["b"], "tier": 1}))
        assert effective_config(store).cascade.tier2_top_k == 5
        _run(store, effective_config(store), tmp_path, Scripted())  # the resume: budget spent
        # c is in the top 5 of tier 1 and was never verified: the resume verifies it (d is below
        # the floor), and the title goes to the best tier-2 score.
        assert _verified(store) == ["a", "b", "e", "c"]
        last = store.events("champion")[-1].data
        assert last["candidate_id"] == names["c"] and last["previous"] == names["b"]
        assert [e.kind for e in store.events()][-1] == "stop"


def test_the_loop_reads_the_archive_file_once_however_many_candidates_it_makes(tmp_path):
    """Selection, the cascade and the display read the campaign's records in memory: the file is
    read once, when the campaign opens it, not again for each candidate."""
    reads: dict[str, int] = {}
    with ArchiveStore.create(tmp_path / "a.sqlite", _config(top_k=2)) as store:
        config = effective_config(store)
        for table in ("candidates", "evaluations", "events", "llm_calls", "counts", "candidate"):
            original = getattr(store, table)

            def counted(*args: Any, _table: str = table, _original: Any = original, **kwargs: Any) -> Any:
                reads[_table] = reads.get(_table, 0) + 1
                return _original(*args, **kwargs)

            setattr(store, table, counted)
        _run(store, config, tmp_path, Scripted())
        during_run = dict(reads)
        assert _verified(store) == ["a", "b", "c", "e"]  # it did the work: 5 candidates, 4 verified
    assert during_run == {"candidates": 1, "evaluations": 1, "events": 1, "llm_calls": 1}
