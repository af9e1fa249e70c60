"""An LLM-driven campaign end to end: a real `Campaign` with the `llm` proposer talking to a real
HTTP server on 127.0.0.1 (through both backends), evaluating in the real process sandbox.

Kind "loss" keeps seeding cheap (three bundled baselines), and the evaluation config is the smallest
that still runs tier 0 and tier 1 for real: one seed, one learning rate, tier 2 off. The sandbox
runner and the baseline cache are the session's (tests/agent/conftest.py), so the workers are warmed
and the AdamW reference sweeps computed once for the whole run.
"""

from __future__ import annotations

import json
import logging
import pathlib

import pytest

from optforge.agent.campaign.directory import archive_path
from optforge.agent.campaign.loop import Campaign, CampaignParts
from optforge.agent.campaign.progress import Progress
from optforge.agent.cli.main import main as optforge_main
from optforge.agent.config import (
    BudgetConfig,
    CampaignConfig,
    CascadeConfig,
    EvaluationConfig,
    LLMConfig,
    SandboxConfig,
    SweepConfig,
)
from optforge.agent.config_file import config_to_toml
from optforge.agent.proposers.factory import build_proposer
from optforge.archive import ArchiveStore, CandidateRecord
from optforge.tasks.contracts import check_source

from .chat_server import api_error, completion, raw, stall
from .conftest import FAKE_KEY, model_for
from .samples import json_reply

# Long enough for a loaded 2-core machine to answer a local request, short enough that the stalled
# request below costs about a second.
TIMEOUT_S = 1.0
EVALUATION = EvaluationConfig(
    seeds={1: 1, 2: 1},
    sweep=SweepConfig(points=1, max_extensions=0, refine=0),
    sandbox=SandboxConfig(workers=2),
)
TRUNCATED_BODY = b'{"id": "chatcmpl-1", "choices": [{"message": {"content": "trunc'
NO_CHOICES_BODY = b'{"id": "no-choices"}'

# Three losses that pass the contract and behave unlike each other and unlike the seeds
# (cross-entropy, focal with gamma 2, label smoothing 0.1), so none is deduplicated by its tier-0
# fingerprint and each gets its own tier-1 evaluation.
SMOOTH_005 = """import torch.nn.functional as F


def loss(logits, targets):
    return F.cross_entropy(logits, targets, label_smoothing=0.05)
"""

FOCAL_1 = """import torch.nn.functional as F


def loss(logits, targets):
    log_pt = F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (-(1 - log_pt.exp()) * log_pt).mean()
"""

POLY_1 = """import torch.nn.functional as F


def loss(logits, targets):
    # PolyLoss (Leng et al. 2022) with epsilon 1: cross-entropy plus (1 - p_t)
    log_pt = F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (-log_pt + (1 - log_pt.exp())).mean()
"""

# Breaks the contract: an import outside the allow-list.
BROKEN = SMOOTH_005.replace(
    "import torch.nn.functional as F\n", "import os\nimport torch.nn.functional as F\n"
)


def reply(code: str, name: str) -> str:
    return json_reply(code, name=name, thought=f"Try {name}.")


def good(code: str, name: str, tokens: int):
    """A completion carrying `code`, with usage unique to it (tokens_in = tokens, out = tokens // 10)."""
    return completion(reply(code, name), tokens_in=tokens, tokens_out=tokens // 10)


def campaign_config(
    backend: str, base_url: str, budget: BudgetConfig, **llm: object
) -> CampaignConfig:
    """The tiny loss campaign with the llm proposer on `backend`; `llm` overrides LLMConfig fields."""
    fields: dict[str, object] = dict(
        backend=backend,
        model=model_for(backend),
        base_url=base_url,
        timeout_s=TIMEOUT_S,
        max_attempts=3,
        backoff_initial_s=0.0,  # RetryPolicy.wait_s is 0 with both at 0 (Retry-After capped too)
        backoff_max_s=0.0,
        max_concurrency=1,  # one request at a time: the scripted replies are consumed in order
        diff_probability=0.0,
    )
    return CampaignConfig(
        kind="loss",
        proposer="llm",
        budget=budget,
        cascade=CascadeConfig(tier2_top_k=0),
        evaluation=EVALUATION,
        llm=LLMConfig.model_validate({**fields, **llm}),
    )


def run_campaign(
    tmp_path, config, runner, baseline_cache
) -> tuple[ArchiveStore, str, list[str], list[Progress]]:
    proposer, notice = build_proposer(config)
    assert notice is None
    store = ArchiveStore.create(tmp_path / "archive.sqlite", config.model_dump(mode="json"))
    logs: list[str] = []
    progress: list[Progress] = []
    parts = CampaignParts(runner, baseline_cache, proposer, progress.append, logs.append)
    reason = Campaign(store, config, parts).run()
    return store, reason, logs, progress


def archive_bytes(path: pathlib.Path) -> bytes:
    """The database file and its write-ahead log, where recent writes live until a checkpoint."""
    wal = pathlib.Path(f"{path}-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def new_candidates(store: ArchiveStore) -> list[CandidateRecord]:
    return [c for c in store.candidates() if c.proposer != "seed"]


# The campaigns below evaluate their three seeds and their new candidates for real (~5 s each on a
# loaded 2-core machine): together they take minutes, so they run with the slow tests.
@pytest.mark.slow
def test_llm_campaign_survives_every_failure_and_records_everything(
    tmp_path, chat_server, backend, fake_key, runner, baseline_cache, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    model = model_for(backend)
    chat_server.enqueue(
        # 1: a good reply -> candidate A
        good(SMOOTH_005, "smooth_005", 1000),
        # 2: code that breaks the contract, then a good repair -> candidate B (two calls)
        good(BROKEN, "smooth_os", 2000),
        good(FOCAL_1, "focal_1", 3000),
        # 3: a server error, then A's code again -> duplicate_source (the call is still recorded)
        api_error(500, "upstream exploded"),
        good(SMOOTH_005, "smooth_again", 4000),
        # 4: a stall past the timeout, then server errors -> proposal_failed (a call with an error)
        stall(TIMEOUT_S * 3),
        api_error(500, "still exploding"),
        api_error(500, "exploding again"),
        # 5: bodies that are no chat completion -> proposal_failed (a call with an error)
        raw(TRUNCATED_BODY),
        raw(NO_CHOICES_BODY),
        raw(TRUNCATED_BODY),
        # 6: broken code twice -> proposal_failed after the repair round (two calls, no errors)
        good(BROKEN, "smooth_os", 5000),
        good(BROKEN, "smooth_os_again", 6000),
        # 7: a rate limit, a truncated body, then a good reply -> candidate C (one call, three
        # attempts), which spends the budget
        api_error(429, "rate limit reached", headers={"Retry-After": "1"}),
        raw(TRUNCATED_BODY),
        good(POLY_1, "poly_1", 7000),
    )
    scripted = chat_server.pending
    config = campaign_config(backend, chat_server.base_url, BudgetConfig(max_candidates=3))

    store, reason, logs, progress = run_campaign(tmp_path, config, runner, baseline_cache)

    assert reason == "budget reached: 3 candidates"
    assert chat_server.pending == 0 and len(chat_server.requests) == scripted  # nothing extra
    assert set(chat_server.authorizations) == {f"Bearer {FAKE_KEY}"}  # the key was really used

    # The candidates: the three distinct good ones, in order, with their provenance.
    candidates = new_candidates(store)
    assert [c.source for c in candidates] == [SMOOTH_005, FOCAL_1, POLY_1]
    assert [c.name for c in candidates] == ["smooth_005", "focal_1", "poly_1"]
    a, b, c = candidates
    for candidate in candidates:
        assert candidate.proposer == f"llm:{model}"
        assert candidate.thought == f"Try {candidate.name}."
        assert candidate.prompt.startswith("[system]\n") and "[user]\n" in candidate.prompt
        assert len(candidate.parent_ids) in (1, 2)
        assert check_source(candidate.source, "loss") == []
    assert a.reply == reply(SMOOTH_005, "smooth_005") and "[assistant]" not in a.prompt
    assert b.reply == reply(FOCAL_1, "focal_1")
    assert "[assistant]" in b.prompt and "import of 'os' is not allowed" in b.prompt  # the repair
    assert c.reply == reply(POLY_1, "poly_1")
    assert len(store.candidates()) == 3 + 3  # the seeds and nothing else

    # Each new candidate went through tier 0 and tier 1 (tier 2 is off), evaluated for real.
    for candidate in candidates:
        evaluations = {e.tier: e for e in store.evaluations(candidate_id=candidate.id)}
        assert sorted(evaluations) == [0, 1]
        assert evaluations[0].status == "ok" and evaluations[0].fingerprint
        assert evaluations[1].status == "ok" and evaluations[1].score is not None
        assert all(e.reused_from is None for e in evaluations.values())
        assert evaluations[1].seeds == 1  # the tiny config's tier-1 seeds

    # Every LLM call, in order: tokens from the server's usage, errors for the failed ones.
    calls = store.llm_calls()
    assert [(k.candidate_id, k.tokens_in, k.tokens_out) for k in calls] == [
        (a.id, 1000, 100),
        (b.id, 2000, 200),
        (b.id, 3000, 300),
        (a.id, 4000, 400),  # the duplicate's call is kept, under the candidate it repeated
        (None, 0, 0),  # failed: no usage
        (None, 0, 0),
        (None, 5000, 500),  # the calls worked; their replies did not
        (None, 6000, 600),
        (c.id, 7000, 700),
    ]
    assert [k.error is not None for k in calls] == [False] * 4 + [True] * 2 + [False] * 3
    # B's broken first reply and both of the broken proposal's: kept, each saying why it was not used.
    assert [k.rejected is not None for k in calls] == [False, True] + [False] * 4 + [True, True, False]
    assert all(k.prompt and k.prompt.startswith("[system]\n") for k in calls)
    assert [k.reply is None for k in calls] == [k.error is not None for k in calls]
    assert {k.model for k in calls} == {model}
    assert all(k.cost_usd is None for k in calls)  # "fake-model" has no price
    # Backends name some failures differently: litellm raises its own Timeout, and its own
    # InternalServerError 500 for a 200 whose body is no chat completion (ours: MalformedResponse).
    # Both are retried.
    timeout = "APITimeoutError" if backend == "openai" else "Timeout"
    malformed = "MalformedResponse" if backend == "openai" else "InternalServerError 500"
    stalled, garbled = calls[4], calls[5]
    assert "exploding again" in stalled.error
    assert (
        f"[3 attempts: {timeout}, InternalServerError 500, InternalServerError 500]"
        in stalled.error
    )
    assert stalled.latency_s >= TIMEOUT_S  # the wait on the stalled attempt counts
    assert f"[3 attempts: {malformed}, {malformed}, {malformed}]" in garbled.error

    # Failures and duplicates are events, never candidates.
    failed = store.events("proposal_failed")
    assert [e.data["proposer"] for e in failed] == [f"llm:{model}"] * 3
    assert failed[0].data["error"] == f"LLM call failed: {stalled.error}"
    assert failed[1].data["error"] == f"LLM call failed: {garbled.error}"
    assert "unusable reply after a repair round" in failed[2].data["error"]
    assert "import of 'os' is not allowed" in failed[2].data["error"]
    (duplicate,) = store.events("duplicate_source")
    assert duplicate.data == {"candidate_id": a.id, "proposer": f"llm:{model}"}
    (stop,) = store.events("stop")
    assert stop.data == {"reason": reason}
    assert sum(line.startswith("proposal failed: ") for line in logs) == 3

    final = progress[-1].summary
    assert (final.done, final.budget, final.proposer) == (3, 3, f"llm:{model}")
    assert (final.proposal_failures, final.duplicate_sources) == (3, 1)
    assert (final.llm_calls, final.llm_errors) == (9, 2)

    # The key went over the wire only: not into the archive, a prompt, a log line or the terminal.
    on_disk = archive_bytes(store.path)
    prompts = [c.prompt or "" for c in store.candidates()]
    sent = json.dumps(chat_server.requests)
    store.close()
    on_disk += archive_bytes(store.path)  # after the close, too (the WAL is checkpointed)
    out, err = capfd.readouterr()
    assert FAKE_KEY.encode() not in on_disk
    assert b"smooth_005" in on_disk  # the check reads the right file
    exposed = [*prompts, sent, caplog.text, *logs, out, err]
    assert not [text for text in exposed if FAKE_KEY in text]


@pytest.mark.slow
def test_rejected_replies_are_kept_and_every_review_command_shows_them(
    tmp_path, chat_server, fake_key, runner, baseline_cache, caplog, capsys
):
    # A local model that answers in prose: a proposal that fails (broken code, then prose), then
    # one that the repair round saves (prose, then good code), which spends the budget of one.
    caplog.set_level(logging.DEBUG)
    excuse = "Sorry, I can only describe it: use a focal loss."
    prose = "I would smooth the labels a little."
    chat_server.enqueue(
        good(BROKEN, "smooth_os", 2000),
        completion(excuse, tokens_in=2100, tokens_out=20),
        completion(prose, tokens_in=1000, tokens_out=10),
        good(SMOOTH_005, "smooth_005", 3000),
    )
    config = campaign_config("openai", chat_server.base_url, BudgetConfig(max_candidates=1))

    store, reason, logs, _ = run_campaign(tmp_path, config, runner, baseline_cache)

    assert reason == "budget reached: 1 candidates" and chat_server.pending == 0
    (candidate,) = new_candidates(store)
    numbered = store.numbered_llm_calls()
    calls = [call for _, call in numbered]
    assert [seq for seq, _ in numbered] == [1, 2, 3, 4]
    assert [c.candidate_id for c in calls] == [None, None, candidate.id, candidate.id]
    assert [c.reply for c in calls] == [reply(BROKEN, "smooth_os"), excuse, prose, candidate.reply]
    assert "import of 'os' is not allowed" in calls[0].rejected
    assert all("found neither a JSON object" in c.rejected for c in calls[1:3])
    assert calls[3].rejected is None and calls[3].prompt == candidate.prompt
    for call, sent in zip(calls, chat_server.requests, strict=True):  # exactly what was sent
        assert call.prompt == "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in sent["messages"])
        assert call.prompt.startswith(f"[system]\n{sent['messages'][0]['content']}")
    (failed,) = store.events("proposal_failed")
    assert "unusable reply after a repair round" in failed.data["error"]
    on_disk = archive_bytes(store.path)
    store.close()
    capsys.readouterr()

    outputs = []

    def cli(*args: object) -> str:
        assert optforge_main([str(a) for a in args]) == 0
        out, err = capsys.readouterr()
        outputs.extend([out, err])
        return out

    listed = cli("llm", "calls", tmp_path)
    assert "│ rejected: " in listed and "import of 'os' is not allowed" in listed
    assert f"rejected (its proposal made {candidate.id[:12]} smooth_005): found neither" in listed
    assert f"candidate {candidate.id[:12]} smooth_005" in listed
    full = cli("llm", "calls", tmp_path, "--seq", "3")
    assert full.endswith(f"--- reply ---\n{prose}\n") and "You are a machine-learning researcher" in full
    as_json = json.loads(cli("llm", "calls", tmp_path, "--seq", "2", "--json"))
    assert (as_json["reply"], as_json["candidate_id"], as_json["outcome"]) == (excuse, None, "rejected")
    (line,) = [x for x in cli("status", tmp_path).splitlines() if x.startswith("llm:")]
    assert line.startswith("llm: 4 calls, 0 errors, 3 rejected replies, 8,100 tokens in / 530 out, median")
    assert line.endswith(", cost unknown (no price for this model)")  # "fake-model" has no price
    status = json.loads(cli("status", tmp_path, "--json"))
    assert (status["llm_rejected"], status["llm_tokens_in"], status["llm_tokens_out"]) == (3, 8100, 530)
    shown = cli("show", tmp_path, candidate.id[:12])
    assert "LLM calls: 2" in shown and "#3 fake-model" in shown and "#4 fake-model" in shown
    cli("report", tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<h2>LLM calls</h2>" in page and "found neither a JSON object" in page

    # The key went over the wire only: not into the archive (prompts and replies included), the
    # review commands' output, the report or a log line.
    assert set(chat_server.authorizations) == {f"Bearer {FAKE_KEY}"}
    assert FAKE_KEY.encode() not in on_disk + archive_bytes(tmp_path / "archive.sqlite")
    assert prose.encode() in on_disk  # the check reads the right file
    exposed = [*outputs, page, caplog.text, *logs]
    assert not [text for text in exposed if FAKE_KEY in text]


@pytest.mark.slow
def test_llm_cost_budget_stops_the_campaign(
    tmp_path, chat_server, backend, fake_key, runner, baseline_cache
):
    # gpt-4o-mini costs $0.15 in / $0.60 out per million tokens in agent/llm/prices.py and in
    # litellm's price map alike (test_proposer_server checks both), so each call here costs
    # 1M * 0.15 + 250k * 0.60 = $0.30.
    model = model_for(backend, "gpt-4o-mini")
    priced = {"tokens_in": 1_000_000, "tokens_out": 250_000}
    chat_server.enqueue(
        completion(reply(SMOOTH_005, "smooth_005"), **priced),  # $0.30: under the budget
        # broken twice: no candidate, but both calls are paid for -> $0.90 in all
        completion(reply(BROKEN, "smooth_os"), **priced),
        completion(reply(BROKEN, "smooth_os"), **priced),
    )
    config = campaign_config(
        backend,
        chat_server.base_url,
        BudgetConfig(max_candidates=10, max_llm_cost_usd=0.5),
        model=model,
    )

    store, reason, _, progress = run_campaign(tmp_path, config, runner, baseline_cache)

    assert reason == "LLM cost budget reached: $0.90 of $0.50"
    assert chat_server.pending == 0 and len(chat_server.requests) == 3
    calls = store.llm_calls()
    assert [call.cost_usd for call in calls] == pytest.approx([0.30] * 3)
    assert store.counts().llm_cost_usd == pytest.approx(0.90)
    assert progress[-1].summary.llm_cost_usd == pytest.approx(0.90)
    (candidate,) = new_candidates(store)
    assert candidate.proposer == f"llm:{model}"
    assert len(store.events("proposal_failed")) == 1
    store.close()


@pytest.mark.slow
def test_requests_in_flight_stay_within_the_budget_and_unused_replies_are_paid_for(
    tmp_path, chat_server, fake_key, runner, baseline_cache
):
    # Backend-independent campaign logic, so the openai backend only. Three requests may be in
    # flight, but the budget takes two more candidates: only two are made. Each costs
    # 2M * 0.15 + 500k * 0.60 = $0.60, so the first stored one stops the campaign; the other
    # reply came back while that candidate was evaluated and is never used, but it was paid for.
    priced = {"tokens_in": 2_000_000, "tokens_out": 500_000}
    chat_server.enqueue(
        completion(reply(SMOOTH_005, "smooth_005"), **priced),
        completion(reply(FOCAL_1, "focal_1"), **priced),
    )
    config = campaign_config(
        "openai",
        chat_server.base_url,
        BudgetConfig(max_candidates=2, max_llm_cost_usd=0.5),
        model="gpt-4o-mini",
        max_concurrency=3,
    )

    store, reason, _, _ = run_campaign(tmp_path, config, runner, baseline_cache)

    assert reason == "LLM cost budget reached: $0.60 of $0.50"
    assert len(chat_server.requests) == 2 and chat_server.pending == 0
    (candidate,) = new_candidates(store)  # which reply came first is up to the threads
    assert candidate.source in (SMOOTH_005, FOCAL_1)
    calls = store.llm_calls()
    assert sorted(c.candidate_id or "" for c in calls) == ["", candidate.id]
    assert store.counts().llm_cost_usd == pytest.approx(1.20)
    store.close()


@pytest.mark.slow
def test_cli_run_with_the_llm_proposer_then_status(
    tmp_path, chat_server, fake_key, cache_root, monkeypatch, capsys
):
    # The CLI builds its own runner and cache from $OPTFORGE_CACHE_DIR: the session's cache holds
    # the exported data and the reference sweeps already.
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(cache_root))
    monkeypatch.setenv("OPTFORGE_LLM_BASE_URL", chat_server.base_url)
    monkeypatch.setenv("OPTFORGE_LLM_API_KEY", FAKE_KEY)
    config = CampaignConfig(
        cascade=CascadeConfig(tier2_top_k=0),
        evaluation=EVALUATION,
        llm=LLMConfig(
            timeout_s=TIMEOUT_S,
            max_attempts=2,
            backoff_initial_s=0.0,
            backoff_max_s=0.0,
            max_concurrency=1,
            diff_probability=0.0,
        ),
    )
    config_file = tmp_path / "cfg.toml"
    config_file.write_text(config_to_toml(config), encoding="utf-8")
    directory = tmp_path / "campaign"
    chat_server.enqueue(
        api_error(503, "warming up"),
        good(SMOOTH_005, "smooth_005", 1000),
    )

    argv = ["run", "--kind", "loss", "--proposer", "llm", "--model", "fake-model", "--budget", "1"]
    code = optforge_main([*argv, "--dir", str(directory), "--config", str(config_file)])

    assert code == 0
    assert chat_server.pending == 0 and chat_server.requests[0]["model"] == "fake-model"
    run_out = capsys.readouterr()
    assert optforge_main(["status", str(directory), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["done"] == 1 and status["llm_calls"] == 1 and status["llm_errors"] == 0
    assert status["kind"] == "loss" and status["stopped_reason"] == "budget reached: 1 candidates"
    with ArchiveStore.open(archive_path(directory)) as store:
        (candidate,) = new_candidates(store)
        assert candidate.proposer == "llm:fake-model" and candidate.source == SMOOTH_005
        assert sorted(e.tier for e in store.evaluations(candidate_id=candidate.id)) == [0, 1]
        stored = store.config()
        assert stored["llm"]["model"] == "fake-model" and stored["budget"]["max_candidates"] == 1
        assert stored["llm"]["base_url"] is None  # from the environment, never frozen in
    saved = (directory / "campaign.toml").read_text() + run_out.out + run_out.err
    assert FAKE_KEY not in saved
    assert FAKE_KEY.encode() not in archive_bytes(archive_path(directory))


def test_cli_without_an_api_key_says_so_in_one_line_and_leaves_no_archive(
    tmp_path, fake_key, monkeypatch, capsys
):
    monkeypatch.delenv("OPTFORGE_LLM_API_KEY")
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path / "cache"))
    directory = tmp_path / "campaign"
    argv = ["run", "--kind", "loss", "--model", "gpt-4o-mini", "--dir", str(directory)]

    assert optforge_main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("optforge: error: no API key for OpenAI: set OPTFORGE_LLM_API_KEY")
    assert not directory.exists()  # fixing the key and running the same command just works

    # A resume of an LLM campaign without the key: the same line, and the archive is left as it was.
    config = CampaignConfig(kind="loss", proposer="llm", llm=LLMConfig(model="gpt-4o-mini"))
    ArchiveStore.create(archive_path(directory), config.model_dump(mode="json")).close()
    assert optforge_main(["resume", str(directory)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [line]
    with ArchiveStore.open(archive_path(directory)) as store:
        assert store.candidates() == [] and store.events() == []
