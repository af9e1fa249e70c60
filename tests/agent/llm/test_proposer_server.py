"""The llm proposer end to end: a real HTTP server on 127.0.0.1, driven through both backends."""

from __future__ import annotations

import logging
import random

import pytest

from optforge.agent.proposers.base import ProposalFailed
from optforge.tasks.contracts import check_source

from .chat_server import api_error, completion, raw, stall
from .conftest import FAKE_KEY, TIMEOUT_S, model_for
from .samples import (
    BROKEN_SOURCE,
    GOOD_SOURCE,
    PARENT_SOURCE,
    diff_reply,
    json_reply,
    optimizer_request,
    preference_request,
    scaling_request,
)

RNG_SEED = 0


def propose(proposer, **request_args):
    return proposer.propose(optimizer_request(**request_args), random.Random(RNG_SEED))


def test_good_reply_gives_a_valid_proposal_with_its_provenance(make_proposer, chat_server, backend):
    chat_server.enqueue(completion(json_reply(GOOD_SOURCE)))
    proposal = propose(make_proposer())

    assert check_source(proposal.source, "optimizer") == []
    assert proposal.source == GOOD_SOURCE
    assert proposal.name == "tanh_momentum"
    assert proposal.thought == "Use tanh for small steps."
    assert proposal.proposer == f"llm:{model_for(backend)}"
    assert proposal.parent_ids == ("p" * 64,)
    assert proposal.prompt.startswith("[system]\n") and "[user]\n" in proposal.prompt
    assert proposal.reply == json_reply(GOOD_SOURCE)
    (call,) = proposal.llm_calls
    assert (call.tokens_in, call.tokens_out, call.error) == (120, 80, None)
    assert call.cost_usd is None  # "fake-model" has no price
    (sent,) = chat_server.requests
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["model"] == "fake-model"
    assert sent["max_tokens"] == 4096 and sent["temperature"] == 0.8


def test_cost_is_priced_for_a_known_model(make_proposer, chat_server, backend):
    chat_server.enqueue(
        completion(json_reply(GOOD_SOURCE), tokens_in=1_000_000, tokens_out=1_000_000)
    )
    proposal = propose(make_proposer(model=model_for(backend, "gpt-4o-mini")))
    # gpt-4o-mini: $0.15 in + $0.60 out per million tokens (our table and litellm's agree).
    assert proposal.llm_calls[0].cost_usd == pytest.approx(0.75)


def test_reply_that_breaks_the_contract_gets_one_repair_round(make_proposer, chat_server):
    chat_server.enqueue(completion(json_reply(BROKEN_SOURCE)), completion(json_reply(GOOD_SOURCE)))
    proposal = propose(make_proposer())

    assert proposal.source == GOOD_SOURCE
    assert len(proposal.llm_calls) == 2
    repair = chat_server.requests[1]["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert repair[2]["content"] == json_reply(BROKEN_SOURCE)
    assert "import of 'os' is not allowed" in repair[3]["content"]
    assert "[assistant]" in proposal.prompt  # the recorded prompt is the whole conversation


def test_reply_broken_twice_fails_carrying_both_calls(make_proposer, chat_server):
    chat_server.enqueue(
        completion(json_reply(BROKEN_SOURCE)), completion(json_reply(BROKEN_SOURCE))
    )
    with pytest.raises(ProposalFailed, match="import of 'os' is not allowed") as failed:
        propose(make_proposer())
    assert len(failed.value.llm_calls) == 2
    assert all(call.error is None for call in failed.value.llm_calls)  # the calls themselves worked
    assert len(chat_server.requests) == 2  # exactly one repair round
    # Both replies are kept with why they were rejected: what the model said is not lost.
    first, repair = failed.value.llm_calls
    assert first.reply == repair.reply == json_reply(BROKEN_SOURCE)
    assert "import of 'os' is not allowed" in first.rejected
    assert "import of 'os' is not allowed" in repair.rejected
    assert "\n" not in first.rejected + repair.rejected  # one line each
    assert first.prompt.startswith("[system]\n") and "[assistant]" not in first.prompt
    assert repair.prompt.startswith(first.prompt + "\n\n[assistant]\n" + json_reply(BROKEN_SOURCE))
    assert (first.candidate_id, repair.candidate_id) == (None, None)


def test_prose_without_code_gets_a_repair_round(make_proposer, chat_server):
    chat_server.enqueue(
        completion("I would add momentum to the sign update."), completion(json_reply(GOOD_SOURCE))
    )
    proposal = propose(make_proposer())
    assert proposal.source == GOOD_SOURCE
    assert "found neither a JSON object" in chat_server.requests[1]["messages"][3]["content"]


def test_each_call_keeps_its_prompt_and_reply_and_a_rejected_reply_says_why(
    make_proposer, chat_server
):
    prose = "I would add momentum to the sign update."
    chat_server.enqueue(
        completion(prose, tokens_in=900, tokens_out=12), completion(json_reply(GOOD_SOURCE))
    )
    proposal = propose(make_proposer())

    rejected, used = proposal.llm_calls
    assert rejected.reply == prose and "found neither a JSON object" in rejected.rejected
    assert (rejected.tokens_in, rejected.tokens_out, rejected.error) == (900, 12, None)
    assert (used.rejected, used.reply) == (None, json_reply(GOOD_SOURCE))
    # Each prompt is exactly what that request sent: the system prompt first, the repair's whole
    # conversation for the second (which is also what the candidate keeps).
    first_sent, second_sent = (r["messages"] for r in chat_server.requests)
    assert rejected.prompt == "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in first_sent)
    assert rejected.prompt.startswith(f"[system]\n{first_sent[0]['content']}")
    assert "You are a machine-learning researcher" in rejected.prompt
    assert used.prompt == proposal.prompt and used.prompt.count("[assistant]\n" + prose) == 1
    assert len(second_sent) == 4
    assert FAKE_KEY not in rejected.prompt + used.prompt


def test_truncated_reply_is_repaired_with_a_request_to_be_shorter(make_proposer, chat_server):
    cut = json_reply(GOOD_SOURCE)[:200]
    chat_server.enqueue(completion(cut), completion(json_reply(GOOD_SOURCE)))
    proposal = propose(make_proposer())
    assert proposal.source == GOOD_SOURCE
    assert "cut off" in chat_server.requests[1]["messages"][3]["content"]


def test_a_reply_that_echoes_the_key_is_recorded_without_it(make_proposer, chat_server):
    chat_server.enqueue(
        completion(f"Your key {FAKE_KEY} works; no code today."), completion(json_reply(GOOD_SOURCE))
    )
    proposal = propose(make_proposer())
    echoed = proposal.llm_calls[0]
    assert echoed.rejected and echoed.reply == "Your key [redacted] works; no code today."
    assert FAKE_KEY not in repr(proposal)  # the repair prompt quotes the reply: redacted there too


def test_rate_limit_is_retried_and_the_call_recorded(make_proposer, chat_server):
    chat_server.enqueue(
        api_error(429, "rate limit reached", headers={"Retry-After": "1"}),
        completion(json_reply(GOOD_SOURCE)),
    )
    proposal = propose(make_proposer())
    assert proposal.source == GOOD_SOURCE
    assert len(chat_server.requests) == 2
    (call,) = proposal.llm_calls  # one logical call, two attempts
    assert call.error is None and call.tokens_out == 80


def test_persistent_server_errors_fail_with_every_attempt_recorded(make_proposer, chat_server):
    chat_server.enqueue(*[api_error(500, "upstream exploded")] * 3)
    with pytest.raises(ProposalFailed) as failed:
        propose(make_proposer())
    assert len(chat_server.requests) == 3  # max_attempts, and no hidden SDK retries on top
    (call,) = failed.value.llm_calls
    assert "HTTP 500" in call.error and "upstream exploded" in call.error
    assert call.prompt.startswith("[system]\n") and (call.reply, call.rejected) == (None, None)
    assert (
        "3 attempts: InternalServerError 500, InternalServerError 500, InternalServerError 500"
        in call.error
    )
    assert (call.tokens_in, call.tokens_out, call.cost_usd) == (0, 0, None)


def test_stalled_request_times_out_and_is_retried(make_proposer, chat_server):
    chat_server.enqueue(stall(TIMEOUT_S * 5), completion(json_reply(GOOD_SOURCE)))
    proposal = propose(make_proposer())
    assert proposal.source == GOOD_SOURCE
    assert len(chat_server.requests) == 2
    assert proposal.llm_calls[0].latency_s >= TIMEOUT_S  # the wait on the stalled attempt counts


def test_client_errors_other_than_429_are_not_retried(make_proposer, chat_server):
    chat_server.enqueue(api_error(400, "max_tokens is too large"))
    with pytest.raises(ProposalFailed, match="max_tokens is too large") as failed:
        propose(make_proposer())
    assert len(chat_server.requests) == 1
    assert "[not retried]" in failed.value.llm_calls[0].error


@pytest.mark.parametrize(
    "body",
    [b'{"id": "chatcmpl-1", "choices": [{"message": {"content": "trunc', b'{"id": "no-choices"}'],
    ids=["truncated_json", "no_choices"],
)
def test_malformed_body_is_retried_like_a_server_error(make_proposer, chat_server, body):
    # Our choice: a 200 whose body is not a chat completion is a server fault, usually transient
    # (a proxy cut the body): retried like a 5xx; a server that keeps doing it fails the proposal.
    chat_server.enqueue(raw(body), completion(json_reply(GOOD_SOURCE)))
    assert propose(make_proposer()).source == GOOD_SOURCE

    chat_server.enqueue(*[raw(body)] * 3)
    with pytest.raises(ProposalFailed, match="3 attempts"):
        propose(make_proposer())


def test_non_json_body_fails_after_the_attempts(make_proposer, chat_server):
    chat_server.enqueue(*[raw(b"<html>502 Bad Gateway</html>", content_type="text/html")] * 3)
    with pytest.raises(ProposalFailed, match="3 attempts") as failed:
        propose(make_proposer())
    assert len(failed.value.llm_calls) == 1
    assert len(chat_server.requests) == 3


def test_diff_reply_is_applied_to_the_parent(make_proposer, chat_server):
    search = '    return -hp["lr"] * torch.sign(m), {"m": m}'
    replace = '    return -hp["lr"] * torch.tanh(m / (m.abs().mean() + 1e-12)), {"m": m}'
    chat_server.enqueue(completion(diff_reply(search, replace)))
    proposal = propose(make_proposer(diff_probability=1.0))
    assert proposal.source == PARENT_SOURCE.replace(search, replace)
    assert "SEARCH/REPLACE" in chat_server.requests[0]["messages"][1]["content"]


def test_diff_that_does_not_apply_falls_back_to_a_full_rewrite(make_proposer, chat_server):
    chat_server.enqueue(
        completion(diff_reply("    return grad, state", "    return -grad, state")),
        completion(json_reply(GOOD_SOURCE)),
    )
    proposal = propose(make_proposer(diff_probability=1.0))
    assert proposal.source == GOOD_SOURCE
    follow_up = chat_server.requests[1]["messages"][3]["content"]
    assert "could not be applied" in follow_up and '"code"' in follow_up


def test_api_key_is_sent_but_never_recorded_logged_or_raised(
    make_proposer, chat_server, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    chat_server.enqueue(
        api_error(500, f"echoing your key {FAKE_KEY}"),  # a careless server echoes the key
        api_error(401, f"Incorrect API key provided: {FAKE_KEY}"),
        completion(json_reply(BROKEN_SOURCE)),
        completion(json_reply(GOOD_SOURCE)),
    )
    proposer = make_proposer()
    with pytest.raises(ProposalFailed) as failed:
        propose(proposer)
    proposal = propose(proposer)

    assert chat_server.authorizations[0] == f"Bearer {FAKE_KEY}"  # the key was really used
    out, err = capfd.readouterr()
    exposed = [
        str(failed.value),
        repr(failed.value.llm_calls),
        repr(proposal),
        repr(proposer.client),
        proposer.config.model_dump_json(),
        caplog.text,
        out,
        err,
    ]
    assert "Incorrect API key provided" in str(failed.value)
    assert not [text for text in exposed if FAKE_KEY in text]


IPO_LIKE = """def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    margin = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return (margin - 1 / (2 * beta)) ** 2 + 0.1 * (-margin).clamp(min=0)
"""


def test_a_preference_loss_is_asked_for_with_the_frontier_and_checked_against_its_contract(make_proposer, chat_server):
    classification = "def loss(logits, targets):\n    return logits.mean()\n"  # the other kind's contract
    chat_server.enqueue(completion(json_reply(classification, name="wrong_kind")),
                        completion(json_reply(IPO_LIKE, name="hinged_ipo")))
    proposal = make_proposer().propose(preference_request(), random.Random(RNG_SEED))
    assert check_source(proposal.source, "preference_loss") == [] and proposal.name == "hinged_ipo"
    first, repair = chat_server.requests
    system, user = (m["content"] for m in first["messages"])
    assert "divided by DPO's" in system and "def loss(policy_chosen_logps" in system
    assert "DPO:       beta 0.1: KL 13.10" in user  # each beta's (KL, reward), next to DPO's
    assert "must take 5 positional arguments" in repair["messages"][-1]["content"]


CUBE_ROOT_RULE = """def scale(width, base_width, group, base):
    ratio = width / base_width
    if group in ("hidden", "output"):
        return {"lr": base["lr"] / ratio, "weight_decay": base["weight_decay"] * ratio ** (1 / 3)}
    return {"lr": base["lr"], "weight_decay": base["weight_decay"]}
"""


def test_a_scaling_rule_is_asked_for_with_each_width_gap_and_checked_against_its_contract(make_proposer, chat_server):
    schedule = "def schedule(step, total_steps):\n    return 1.0\n"  # another kind's contract
    chat_server.enqueue(completion(json_reply(schedule, name="wrong_kind")),
                        completion(json_reply(CUBE_ROOT_RULE, name="mup_wd_cube_root")))
    proposal = make_proposer().propose(scaling_request(), random.Random(RNG_SEED))
    assert check_source(proposal.source, "scaling_rule") == [] and proposal.name == "mup_wd_cube_root"
    first, repair = chat_server.requests
    system, user = (m["content"] for m in first["messages"])
    assert "def scale(width, base_width, group, base):" in system and "exp(-mean gap" in system
    assert "gap +0.004 nats" in user and "hidden 0.00565, 0.2" in user  # each width's gap and values
    assert "missing required function 'scale'" in repair["messages"][-1]["content"]
