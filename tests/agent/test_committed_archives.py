"""The campaigns committed under benchmarks/campaigns/ were written by older code: they must still
read, review, export and resume. Resuming evaluates nothing real here (evaluation is faked): what is
tested is that the loop reads the old records, owes tier 2 to the current leaders and stops."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import tarfile
from typing import Any

import pytest

from optforge.agent.campaign import cascade as campaign_cascade
from optforge.agent.campaign.directory import effective_config
from optforge.agent.campaign.loop import Campaign, CampaignParts
from optforge.agent.campaign.rules import tier2_owed
from optforge.agent.campaign.summary import summarize
from optforge.agent.cli.main import main
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.proposers.base import ProposalFailed, ProposalRequest
from optforge.archive import ArchiveStore, EvaluationRecord, TaskResult
from optforge.tasks.contracts import source_hash

ARCHIVES = sorted((pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "campaigns").glob("*.tar.xz"))


@pytest.fixture(params=ARCHIVES, ids=[a.name.removesuffix(".tar.xz") for a in ARCHIVES])
def campaign(request, tmp_path: pathlib.Path) -> pathlib.Path:
    with tarfile.open(request.param) as tar:
        tar.extractall(tmp_path, filter="data")
    (archive,) = tmp_path.glob("*/archive.sqlite")
    return archive.parent


def test_the_committed_archives_are_there():
    assert len(ARCHIVES) >= 2


def test_a_committed_archive_reads_lists_shows_and_exports(campaign, tmp_path, capsys):
    with ArchiveStore.open(campaign / "archive.sqlite") as store:
        summary = summarize(store)
        tier1 = [e for e in store.evaluations(tier=1) if e.tasks]
    # Finished campaigns only (in-progress/ is not globbed): every one ran its whole budget.
    assert summary.done >= summary.budget >= 40 and summary.best is not None
    assert all(isinstance(t, TaskResult) and t.name and t.metric for e in tier1 for t in e.tasks)
    assert main(["ls", str(campaign), "--json", "--top", "3"]) == 0
    listed = json.loads(capsys.readouterr().out)
    rows = listed if isinstance(listed, list) else listed["candidates"]
    best = rows[0]["id"]
    assert main(["show", str(campaign), best[:12], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == best and shown["evaluations"]
    out = tmp_path / "best.py"
    assert main(["export", str(campaign), best[:12], "-o", str(out)]) == 0
    spec = importlib.util.spec_from_file_location("committed_best", out)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.PROVENANCE["candidate_id"] == best


class _NoMoreProposals:
    name = "mutate"

    def propose(self, request: ProposalRequest, rng: Any) -> Any:
        raise ProposalFailed("the budget is spent: nothing should be proposed")


def _fake_tier0(source: str, kind: str, runner: Any, config: Any) -> EvaluationRecord:
    return EvaluationRecord(source_hash(source), 0, "ok", fingerprint=source_hash(source), batching="vmap_lr")


def _fake_tasks(source: str, kind: str, tier: int, screened: EvaluationRecord, *rest: Any) -> EvaluationRecord:
    task = TaskResult("t", "ok", "cross_entropy", score=1.0, final=1.0, reference_final=1.0,
                      seed_finals=(1.0, 1.0, 1.0, 1.0))
    return EvaluationRecord(source_hash(source), tier, "ok", score=1.0, score_ci=(0.99, 1.01), tasks=[task], seeds=4,
                      task_versions={"t": "v"}, fingerprint=screened.fingerprint)


def test_a_committed_archive_resumes_verifies_its_leaders_and_stops(campaign, tmp_path, monkeypatch):
    monkeypatch.setattr(campaign_cascade, "run_tier0", _fake_tier0)
    monkeypatch.setattr(campaign_cascade, "evaluate_tasks", _fake_tasks)
    with ArchiveStore.open(campaign / "archive.sqlite") as store:
        config = effective_config(store)
        old = {c.id for c in store.candidates()}
        new = {c.id for c in store.candidates() if c.proposer != "seed"}
        # Archives made before the verified-first rule owe tier 2 to its leaders; one made under it
        # and finished (screen-150) owes nothing.
        owed = set(tier2_owed([e for e in store.evaluations() if e.tier in (1, 2)], new, config.cascade, config.kind))
        n_before, events_before = len(store.evaluations()), len(store.events())
        parts = CampaignParts(runner=_FakeRunner(), cache=BaselineCache(tmp_path / "cache"),
                              proposer=_NoMoreProposals())
        reason = Campaign(store, config, parts).run()
        assert reason == f"budget reached: {config.budget.max_candidates} candidates"
        added = store.evaluations()[n_before:]
        seeded = [c for c in store.candidates() if c.id not in old]
        # Baselines bundled since the campaign ran join as seeds (screened like any seed); of the
        # campaign's own candidates only tier 2 is owed (the verified-first rule's leaders).
        assert all(c.proposer == "seed" for c in seeded)
        assert all(e.tier == 2 or e.candidate_id in {c.id for c in seeded} for e in added)
        assert {e.candidate_id for e in added if e.tier == 2 and e.candidate_id in old} == owed
        pairs = [(e.candidate_id, e.tier) for e in store.evaluations()]
        assert len(pairs) == len(set(pairs))  # nothing evaluated twice
        this_run = [e.kind for e in store.events()[events_before:]]
        assert this_run[0] == "resume" and this_run[-1] == "stop"


class _FakeRunner:
    environment = {"sandbox": "fake"}
