"""A campaign's LLM calls as a user debugging a model sees them: `optforge llm calls` (the list,
`--last`, `--seq N`, `--json`), the `llm:` line of `optforge status`, `optforge show` and the HTML
report, on a real archive written through the store the way the campaign writes it."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from dataclasses import dataclass

import pytest

from optforge.agent.cli.main import main
from optforge.agent.config import CampaignConfig
from optforge.archive import ArchiveStore, CandidateRecord, EventRecord, LLMCallRecord

from .conftest import source

MODEL = "openai/Qwen/Qwen2.5-Coder-32B-Instruct-AWQ"  # a local server's: no known price
SYSTEM = "You are a machine-learning researcher who discovers new optimizers."
PROSE = "I would <b>add momentum</b> to the sign update."
NO_CODE = 'found neither a JSON object with "code" nor a ```python block'
CONTRACT = "import of 'os' is not allowed; missing required function 'init'"
TIMEOUT = "APITimeoutError: Request timed out. [3 attempts: APITimeoutError, APITimeoutError]"


@dataclass(frozen=True)
class Calls:
    directory: pathlib.Path
    candidate: CandidateRecord


def prompt(*turns: tuple[str, str]) -> str:
    return "\n\n".join(f"[{role}]\n{content}" for role, content in (("system", SYSTEM), *turns))


def call(at: float, **fields: object) -> LLMCallRecord:
    base = LLMCallRecord(None, MODEL, 1000, 100, None, 2.0, created_at=at, prompt=prompt(("user", "Write one.")))
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def build(directory: pathlib.Path, extra_calls: int = 0) -> Calls:
    """One repaired proposal (a prose reply, rejected, then the code), one that failed (two
    rejected replies), one failed request; `extra_calls` more used calls after those."""
    directory.mkdir(parents=True, exist_ok=True)
    with ArchiveStore.create(directory / "archive.sqlite", CampaignConfig().model_dump(mode="json")) as store:
        store.add_event(EventRecord("start", {"proposer": f"llm:{MODEL}"}, created_at=1000.0))
        code = json.dumps({"name": "sign_momentum", "code": source("sign_momentum")})
        candidate = CandidateRecord.new(
            source("sign_momentum"), "optimizer", "sign_momentum", proposer=f"llm:{MODEL}",
            prompt=prompt(("user", "Write one."), ("assistant", PROSE), ("user", "Repair it.")),
            reply=code, created_at=1010.0,
        )
        store.add_candidate(candidate, [
            call(1001.0, reply=PROSE, rejected=NO_CODE, tokens_out=12, latency_s=1.0),
            call(1002.0, reply=code, prompt=candidate.prompt, tokens_in=1500, latency_s=3.0),
        ])
        broken = json.dumps({"code": "import os\n<script>alert('reply')</script>"})
        for at in (1020.0, 1021.0):  # a failed proposal: stored without a candidate
            store.add_llm_call(call(at, reply=broken, rejected=f"{CONTRACT} <script>"))
        store.add_event(EventRecord("proposal_failed", {"proposer": f"llm:{MODEL}", "error": "x"}, 1022.0))
        store.add_llm_call(call(1030.0, error=TIMEOUT, tokens_in=0, tokens_out=0, latency_s=90.0))
        for i in range(extra_calls):
            store.add_llm_call(call(1100.0 + i, reply="{}", candidate_id=candidate.id, latency_s=2.0))
        store.add_event(EventRecord("stop", {"reason": "budget reached"}, created_at=2000.0))
    return Calls(directory, candidate)


@pytest.fixture
def calls(tmp_path) -> Calls:
    return build(tmp_path / "campaign")


def run(capsys, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_list_shows_each_call_and_what_it_came_to(calls, capsys):
    code, out, err = run(capsys, "llm", "calls", calls.directory)
    assert code == 0 and err == ""
    rows = {int(m.group(1)): line for line in out.splitlines() if (m := re.match(r"│\s+(\d+) │", line))}
    assert sorted(rows) == [1, 2, 3, 4, 5]
    short = calls.candidate.id[:12]
    assert "Qwen2.5-Coder-32B-Instr…" in rows[1] and MODEL not in out  # shortened to fit
    assert "1,000" in rows[1] and "12" in rows[1] and "1.00s" in rows[1]
    assert f"rejected (its proposal made {short} sign_momentum): found neither" in rows[1]
    assert f"candidate {short} sign_momentum" in rows[2]
    assert "rejected: import of 'os' is not allowed" in rows[3] and "rejected" in rows[4]
    assert "error: APITimeoutError: Request timed out." in rows[5] and "90.00s" in rows[5]
    assert "5 LLM calls" in out
    # Median latency over the four calls that got a reply (the timeout's 90 s is no reply time).
    assert (
        "in all: 5 calls, 3 rejected replies, 1 errors, 4,500 tokens in / 312 out, median latency "
        "2.0s, cost unknown (no price for this model)"
    ) in out


def test_last_n_lists_only_the_newest_calls(calls, capsys):
    code, out, _ = run(capsys, "llm", "calls", calls.directory, "--last", "2")
    assert code == 0
    assert "the last 2 of 5 LLM calls" in out and "these 2: 2 calls" in out
    listed = [int(m.group(1)) for line in out.splitlines() if (m := re.match(r"│\s+(\d+) │", line))]
    assert listed == [4, 5]


def test_json_lists_every_call_without_its_texts(calls, capsys):
    code, out, _ = run(capsys, "llm", "calls", calls.directory, "--json")
    assert code == 0
    listed = json.loads(out)
    assert [c["seq"] for c in listed] == [1, 2, 3, 4, 5]
    assert [c["outcome"] for c in listed] == ["rejected", "candidate", "rejected", "rejected", "error"]
    assert [c["candidate_id"] for c in listed] == [calls.candidate.id] * 2 + [None] * 3
    assert listed[0]["candidate_name"] == "sign_momentum" and listed[0]["rejected"] == NO_CODE
    assert listed[4]["error"] == TIMEOUT and listed[4]["cost_usd"] is None
    assert "prompt" not in listed[0] and "reply" not in listed[0]


def test_seq_prints_the_whole_prompt_and_reply(calls, capsys):
    code, out, _ = run(capsys, "llm", "calls", calls.directory, "--seq", "1")
    assert code == 0
    head, rest = out.split("--- prompt ---\n", 1)
    sent, said = rest.split("\n--- reply ---\n", 1)
    assert f"call 1: {MODEL}" in head  # in full here
    assert f"outcome: rejected (its proposal made {calls.candidate.id[:12]} sign_momentum): {NO_CODE}" in head
    assert "tokens: 1,000 in / 12 out; latency 1.00s; cost no known price" in head
    assert sent.strip() == prompt(("user", "Write one.")) and sent.startswith(f"[system]\n{SYSTEM}")
    assert said == PROSE + "\n"  # as the model wrote it: plain text, no markup eaten

    code, out, _ = run(capsys, "llm", "calls", calls.directory, "--seq", "5")
    assert "outcome: error: APITimeoutError" in out and out.endswith("(none: the request failed)\n")

    code, out, _ = run(capsys, "llm", "calls", calls.directory, "--seq", "3", "--json")
    one = json.loads(out)
    assert (one["seq"], one["outcome"], one["candidate_id"]) == (3, "rejected", None)
    assert one["prompt"].startswith("[system]\n") and "import os" in one["reply"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--seq", "9"), "no LLM call numbered 9 in {dir}: it holds calls 1 to 5; `optforge llm calls {dir}` lists them"),
        (("--last", "0"), "--last must be at least 1, got 0"),
    ],
)
def test_a_bad_number_is_one_line(calls, capsys, args, message):
    code, out, err = run(capsys, "llm", "calls", calls.directory, *args)
    assert (code, out) == (2, "")
    assert err == f"optforge: error: {message.format(dir=calls.directory)}\n"


def test_a_directory_without_a_campaign_is_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "llm", "calls", tmp_path / "nowhere")
    assert code == 2 and err.startswith("optforge: error: no such directory:") and err.count("\n") == 1
    code, _, err = run(capsys, "llm", "calls", tmp_path)
    assert code == 2 and err.startswith(f"optforge: error: no campaign in {tmp_path}") and err.count("\n") == 1


def test_an_archive_without_calls_says_so(tmp_path, capsys):
    ArchiveStore.create(tmp_path / "archive.sqlite", CampaignConfig().model_dump(mode="json")).close()
    assert run(capsys, "llm", "calls", tmp_path)[1] == "the archive holds no LLM calls\n"
    assert json.loads(run(capsys, "llm", "calls", tmp_path, "--json")[1]) == []


def test_status_says_rejected_tokens_latency_and_that_the_cost_is_unknown(calls, capsys):
    code, out, _ = run(capsys, "status", calls.directory)
    assert code == 0
    (line,) = [line for line in out.splitlines() if line.startswith("llm:")]
    assert line == (
        "llm: 5 calls, 1 errors, 3 rejected replies, 4,500 tokens in / 312 out, median latency "
        "2.0s, cost unknown (no price for this model)"
    )
    status = json.loads(run(capsys, "status", calls.directory, "--json")[1])
    assert (status["llm_calls"], status["llm_errors"], status["llm_cost_usd"]) == (5, 1, 0.0)
    assert (status["llm_rejected"], status["llm_tokens_in"], status["llm_tokens_out"]) == (3, 4500, 312)
    assert status["llm_latency_median_s"] == pytest.approx(2.0)


def test_show_lists_the_calls_that_made_the_candidate(calls, capsys):
    code, out, _ = run(capsys, "show", calls.directory, calls.candidate.id[:10])
    assert code == 0
    assert "LLM calls: 2 (`optforge llm calls DIR --seq N` shows one's prompt and reply)" in out
    assert f"  #1 {MODEL}: 1,000 tokens in / 12 out, 1.00s; rejected: {NO_CODE}" in out
    assert f"  #2 {MODEL}: 1,500 tokens in / 100 out, 3.00s; reply used" in out
    assert out.index("LLM calls:") < out.index("code:")
    detail = json.loads(run(capsys, "show", calls.directory, calls.candidate.id[:10], "--json")[1])
    assert [(c["seq"], c["outcome"]) for c in detail["llm_calls"]] == [(1, "rejected"), (2, "candidate")]
    assert detail["llm_calls"][0]["rejected"] == NO_CODE


def test_the_report_tables_the_calls_and_escapes_what_the_model_wrote(calls, capsys):
    assert run(capsys, "report", calls.directory)[0] == 0
    html = (calls.directory / "report.html").read_text(encoding="utf-8")
    section = html[html.index("<h2>LLM calls</h2>"):]
    section = section[: section.index("</section>")]
    assert (
        "5 calls, 3 rejected replies, 1 errors, 4,500 tokens in / 312 out, median latency 2.0s, "
        "cost unknown (no price for this model)"
    ) in section
    rows = re.findall(r"<tr><td>(\d+)</td>", section)
    assert rows == ["1", "2", "3", "4", "5"]
    assert "<script>" not in html and "rejected: import of &#x27;os&#x27; is not allowed" in section
    assert "&lt;script&gt;" in section  # the reason, escaped
    assert "<td>1,000</td><td>12</td><td>1.00s</td>" in section
    assert "earlier calls are not shown" not in section
    # No price, so no cost chart claiming $0: a note says the cost is unknown.
    assert "LLM cost unknown: no price for this model (5 calls, 1 errors)" in html


def test_the_report_lists_the_latest_50_calls_and_says_how_many_it_left_out(tmp_path, capsys):
    built = build(tmp_path / "many", extra_calls=55)
    assert run(capsys, "report", built.directory)[0] == 0
    html = (built.directory / "report.html").read_text(encoding="utf-8")
    section = html[html.index("<h2>LLM calls</h2>"):]
    rows = [int(n) for n in re.findall(r"<tr><td>(\d+)</td>", section[: section.index("</section>")])]
    assert rows == list(range(11, 61))
    assert "10 earlier calls are not shown; `optforge llm calls DIR` lists every call" in section
    assert "60 calls, 3 rejected replies, 1 errors" in section  # the totals count them all
