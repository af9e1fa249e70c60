"""A campaign's LLM calls for review: what each call came to, in words and as JSON.

Pure reads of records (the archive's `LLMCallRecord`, numbered by the store's `seq`), shared by
`optforge llm calls`, `optforge show` and the HTML report. Rendering lives with each of them; the
report escapes every string here, since prompts, replies and reasons came from a model.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from optforge.agent.campaign.summary import llm_figures
from optforge.agent.campaign.summary_text import cost_text, latency_text
from optforge.archive import CandidateRecord, LLMCallRecord

# What a call came to: its reply made (or, after a repair round, led to) a candidate; the proposer
# could not use its reply; the request failed; or none of these (a reply that came back after the
# campaign stopped, or a call from an archive older than schema 4, which kept no reason).
Outcome = Literal["candidate", "rejected", "error", "none"]

MODEL_WIDTH = 24  # a model name longer than this is shortened in the list


@dataclass(frozen=True)
class NumberedCall:
    seq: int  # the store's number for it (`optforge llm calls DIR --seq N`)
    call: LLMCallRecord


def outcome(call: LLMCallRecord) -> Outcome:
    if call.error is not None:
        return "error"
    if call.rejected is not None:
        return "rejected"
    return "candidate" if call.candidate_id is not None else "none"


def outcome_text(call: LLMCallRecord, candidates: Mapping[str, CandidateRecord]) -> str:
    """"candidate 3fa9c2e1aaaa adam_tanh", "rejected: <reason>", "error: <error>" or "no candidate".

    A rejected reply of a proposal that still made a candidate (the repair round fixed it, or a
    `mix` proposer's other member took over) belongs to that candidate too, and says so:
    "rejected (its proposal made 3fa9c2e1aaaa adam_tanh): <reason>"."""
    kind = outcome(call)
    if kind == "error":
        return f"error: {_one_line(call.error)}"
    if kind == "rejected":
        saved = _candidate(call.candidate_id, candidates)
        return f"rejected{f' (its proposal made {saved})' if saved else ''}: {_one_line(call.rejected)}"
    if kind == "candidate":
        return f"candidate {_candidate(call.candidate_id, candidates)}"
    return "no candidate"


def _candidate(cid: str | None, candidates: Mapping[str, CandidateRecord]) -> str:
    if cid is None:
        return ""
    found = candidates.get(cid)
    return f"{cid[:12]} {found.name}" if found else cid[:12]


def _one_line(text: str | None) -> str:
    return " ".join(line.strip() for line in (text or "").splitlines() if line.strip())


def short_model(model: str, width: int = MODEL_WIDTH) -> str:
    """A long model name as its last path part ("openai/Qwen/Qwen2.5-7B" -> "Qwen2.5-7B"), cut
    to `width` with "…" where even that is too long."""
    if len(model) <= width:
        return model
    tail = model.rsplit("/", 1)[-1]
    return tail if len(tail) <= width else tail[: width - 1] + "…"


def time_text(created_at: float) -> str:
    return datetime.datetime.fromtimestamp(created_at).strftime("%Y-%m-%d %H:%M:%S")


def totals_text(calls: Sequence[LLMCallRecord]) -> str:
    """"9 calls, 3 rejected replies, 2 errors, median latency 1.4s, cost unknown (...)"."""
    f = llm_figures(calls)
    cost = cost_text(f["llm_cost_usd"], f["llm_calls"] - f["llm_errors"], f["llm_unpriced"])
    return (
        f"{f['llm_calls']} calls, {f['llm_rejected']} rejected replies, {f['llm_errors']} errors, "
        f"{f['llm_tokens_in']:,} tokens in / {f['llm_tokens_out']:,} out, "
        f"median latency {latency_text(f['llm_latency_median_s'])}, {cost}"
    )


def call_json(
    numbered: NumberedCall, candidates: Mapping[str, CandidateRecord], full: bool = False
) -> dict[str, Any]:
    """One call as JSON; `full` adds its prompt and reply."""
    call = numbered.call
    found = candidates.get(call.candidate_id) if call.candidate_id else None
    data: dict[str, Any] = {
        "seq": numbered.seq,
        "created_at": call.created_at,
        "model": call.model,
        "tokens_in": call.tokens_in,
        "tokens_out": call.tokens_out,
        "cost_usd": call.cost_usd,
        "latency_s": call.latency_s,
        "outcome": outcome(call),
        "candidate_id": call.candidate_id,
        "candidate_name": found.name if found else None,
        "rejected": call.rejected,
        "error": call.error,
    }
    if full:
        data["prompt"] = call.prompt
        data["reply"] = call.reply
    return data


__all__ = [
    "MODEL_WIDTH",
    "NumberedCall",
    "Outcome",
    "call_json",
    "outcome",
    "outcome_text",
    "short_model",
    "time_text",
    "totals_text",
]
