"""The LLM path end to end against a real model behind a real OpenAI-compatible server written by
someone else: SmolLM2-135M-Instruct in `transformers serve` on 127.0.0.1 (real_server.py).

A 135M model rarely writes a usable candidate; that is the point of these tests: what a user relies
on must hold whatever the model says. Every call is recorded with its prompt, reply, tokens and
latency; an unusable reply gets a repair round and then counts as a failed proposal without
stopping the campaign; whatever is usable is evaluated in the sandbox; the API key is never stored
or printed; `status`, `show`, `llm calls` and the report show the calls.

CI runs them (`make llm-server-deps` first); elsewhere they skip with that command.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from optforge.agent.campaign.directory import archive_path
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
from optforge.archive import ArchiveStore

from .real_server import CONTEXT_TOKENS, RealServer, running_server

pytestmark = pytest.mark.llm

FAKE_KEY = "sk-optforge-REAL-SERVER-FAKE-KEY-5d21"  # the server ignores it; it must leak nowhere
MAX_TOKENS = 256  # ~20 s of generation here; a loss module is ~60-150 tokens
# Then the proposal in flight finishes: 2-4 proposals in all on an idle 2-core machine, at least
# one on a loaded one.
WALL_MINUTES = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> RealServer:
    with running_server(tmp_path_factory.mktemp("llm-server") / "server.log") as real:
        yield real


def optforge(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optforge.agent.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def user_env(server: RealServer, cache: pathlib.Path) -> dict[str, str]:
    """What a user exports to point optforge at a local server (README "Run against a local
    model"), plus a key that the local server does not need, to prove it is never stored."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPTFORGE_", "OPENAI_"))}
    return env | {
        "OPTFORGE_LLM_BASE_URL": server.base_url,
        "OPTFORGE_LLM_MODEL": server.model,
        "OPTFORGE_LLM_API_KEY": FAKE_KEY,
        "OPTFORGE_CACHE_DIR": str(cache),
    }


def test_llm_check_against_the_real_server(server, cache_root):
    env = user_env(server, cache_root)
    # A generous timeout: a 2-core CI machine generates about 13 tokens a second.
    result = optforge("llm", "check", "--kind", "loss", "--json", "--timeout", "600", env=env)

    # 0: the reply was a valid candidate; 1: the set-up works but the reply was not usable.
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == server.model and report["endpoint"] == server.base_url
    assert report["tokens_in"] > 50 and 0 < report["tokens_out"] <= report["max_tokens"]
    assert report["latency_s"] > 0
    assert FAKE_KEY not in result.stdout + result.stderr


def campaign_config() -> CampaignConfig:
    return CampaignConfig(
        kind="loss",
        proposer="llm",
        budget=BudgetConfig(max_candidates=20, max_wall_minutes=WALL_MINUTES),
        cascade=CascadeConfig(tier2_top_k=0),
        evaluation=EvaluationConfig(
            seeds={1: 1, 2: 1},
            sweep=SweepConfig(points=1, max_extensions=0, refine=0),
            sandbox=SandboxConfig(workers=2),
        ),
        llm=LLMConfig(
            max_tokens=MAX_TOKENS,
            context_tokens=CONTEXT_TOKENS,
            timeout_s=300,
            max_attempts=2,
            max_concurrency=1,  # one 2-core machine runs the model and the sandbox
            diff_probability=0.0,
        ),
    )


def test_a_campaign_against_the_real_model_records_everything_and_keeps_going(
    server, cache_root, tmp_path
):
    env = user_env(server, cache_root)
    config_file = tmp_path / "campaign.toml"
    config_file.write_text(config_to_toml(campaign_config()), encoding="utf-8")
    directory = tmp_path / "campaign"

    run = optforge("run", "--config", str(config_file), "--dir", str(directory), env=env)

    assert run.returncode == 0, run.stderr[-3000:]
    with ArchiveStore.open(archive_path(directory)) as store:
        calls = store.llm_calls()
        candidates = [c for c in store.candidates() if c.proposer != "seed"]
        events = store.events()
        evaluations = {(e.candidate_id, e.tier) for e in store.evaluations()}
    failed = [e for e in events if e.kind == "proposal_failed"]
    duplicates = [e for e in events if e.kind == "duplicate_source"]

    # The campaign ran to its wall-time budget however many replies were unusable.
    assert [e.data["reason"] for e in events if e.kind == "stop"] == [
        f"wall-time budget reached: {WALL_MINUTES} minutes"
    ]
    proposals = len(candidates) + len(failed) + len(duplicates)
    assert proposals >= 1 and len(calls) >= proposals
    assert len(calls) <= 2 * proposals  # the request and at most one repair round each

    # Every call: the prompt sent, the reply, tokens from the server's usage, latency.
    for call in calls:
        assert call.error is None and call.model == server.model
        assert "# The contract" in call.prompt and call.reply
        assert call.tokens_in > 500 and 0 < call.tokens_out <= MAX_TOKENS and call.latency_s > 0
        assert call.tokens_in + MAX_TOKENS <= CONTEXT_TOKENS  # the prompt fit the window
    # An unusable reply got one repair round: the second call of that proposal sends the error
    # back; a proposal still unusable after it is a failed proposal, with both calls kept.
    rejected = [c for c in calls if c.rejected]
    for call in rejected:
        assert call.candidate_id is None or any(c.id == call.candidate_id for c in candidates)
    repairs = [c for c in calls if "Your reply could not be used" in c.prompt]
    assert len(repairs) == len([c for c in calls if c.rejected and "could not be used" not in c.prompt])
    for event in failed:
        assert event.data["error"].startswith("unusable reply after a repair round")
    # Whatever was usable was evaluated in the sandbox (tier 0 at least), under the model's name.
    for candidate in candidates:
        assert (candidate.id, 0) in evaluations
        assert candidate.proposer == f"llm:{server.model}"

    # The key: never in the archive, the campaign's files or any output.
    stored = b"".join(p.read_bytes() for p in directory.rglob("*") if p.is_file())
    assert FAKE_KEY.encode() not in stored
    assert FAKE_KEY not in run.stdout + run.stderr

    # What a user looks at: status, the calls, a candidate, the report.
    status = optforge("status", str(directory), "--json", env=env)
    summary = json.loads(status.stdout)
    assert summary["llm_calls"] == len(calls) and summary["llm_errors"] == 0
    assert summary["llm_rejected"] == len(rejected)
    listing = optforge("llm", "calls", str(directory), env=env)
    assert listing.returncode == 0 and len(listing.stdout.splitlines()) >= len(calls)
    first = optforge("llm", "calls", str(directory), "--seq", "1", env=env)
    assert first.returncode == 0 and calls[0].reply.strip()[:40] in first.stdout
    if candidates:
        shown = optforge("show", str(directory), candidates[0].id, env=env)
        assert shown.returncode == 0 and "LLM call" in shown.stdout
    report = optforge("report", str(directory), "-o", str(tmp_path / "report.html"), env=env)
    assert report.returncode == 0
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "LLM calls" in html and FAKE_KEY not in html
    for output in (status, listing, first, report):
        assert FAKE_KEY not in output.stdout + output.stderr
