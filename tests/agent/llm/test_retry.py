"""The retry policy, failure summaries, the concurrency bound and building clients from config,
against in-process fake clients (no network)."""

from __future__ import annotations

import random
import threading
import time
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optforge.agent.config import LLMConfig, llm_api_key, resolve_llm_config
from optforge.agent.llm import (
    BoundedChatClient,
    ChatError,
    ChatReply,
    ChatRequest,
    LLMCallFailed,
    LLMUnavailable,
    Message,
    RetryPolicy,
    chat,
    litellm_client,
    make_chat_client,
)
from optforge.agent.llm.prices import cost_usd

from .conftest import FAKE_KEY

REQUEST = ChatRequest((Message("user", "hi"),), "m", 0.5, 100, 1.0)
OK = ChatReply("hello", 10, 5, 0.001, 0.01)


class ScriptedClient:
    """Raises or returns the scripted outcomes in order."""

    def __init__(self, *outcomes):
        self.outcomes = deque(outcomes)
        self.calls = 0

    def complete(self, messages, *, model, temperature, max_tokens, timeout):
        self.calls += 1
        outcome = self.outcomes.popleft()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def rate_limited(retry_after=None):
    return ChatError(
        "RateLimitError: HTTP 429: slow down", retryable=True, status=429, retry_after_s=retry_after
    )


def test_retry_after_is_honoured_up_to_the_cap():
    sleeps: list[float] = []
    client = ScriptedClient(rate_limited(retry_after=2.5), rate_limited(retry_after=99.0), OK)
    reply, call = chat(client, REQUEST, RetryPolicy(5, 0.01, 10.0), sleep=sleeps.append)
    assert reply is OK and call.error is None and (call.tokens_in, call.cost_usd) == (10, 0.001)
    assert sleeps[0] >= 2.5 and sleeps[1] == 10.0


def test_a_non_retryable_error_stops_at_once():
    client = ScriptedClient(
        ChatError("AuthenticationError: HTTP 401: bad key", retryable=False, status=401)
    )
    with pytest.raises(LLMCallFailed) as failed:
        chat(client, REQUEST, RetryPolicy(5, 0.0, 0.0), sleep=lambda s: None)
    assert client.calls == 1
    assert failed.value.call.error == "AuthenticationError: HTTP 401: bad key [not retried]"


def test_the_final_error_line_names_every_attempt():
    client = ScriptedClient(
        rate_limited(),
        ChatError("APITimeoutError: no reply within 1s", retryable=True),
        ChatError("BadRequestError: HTTP 400: context too long", retryable=False, status=400),
    )
    with pytest.raises(LLMCallFailed) as failed:
        chat(client, REQUEST, RetryPolicy(5, 0.0, 0.0), sleep=lambda s: None)
    assert failed.value.call.error == (
        "BadRequestError: HTTP 400: context too long [3 attempts: RateLimitError 429, "
        "APITimeoutError, BadRequestError 400; the last is not retryable]"
    )
    assert str(failed.value) == failed.value.call.error


@given(
    attempt=st.integers(1, 30),
    retry_after=st.none() | st.floats(0, 1000),
    initial=st.floats(0, 10),
    cap=st.floats(0, 100),
    seed=st.integers(0, 2**32),
)
def test_every_wait_is_bounded_and_grows_with_the_attempt(attempt, retry_after, initial, cap, seed):
    policy = RetryPolicy(5, initial, cap)
    wait = policy.wait_s(attempt, retry_after, random.Random(seed))
    ceiling = min(cap, initial * 2 ** (attempt - 1))
    assert 0 <= wait <= cap
    assert wait >= ceiling / 2 - 1e-9  # equal jitter: never an immediate retry
    if retry_after is not None:
        assert wait >= min(retry_after, cap)


def test_bounded_client_keeps_at_most_limit_requests_in_flight():
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    class Slow:
        def complete(self, messages, **kwargs):
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            time.sleep(0.02)
            with lock:
                state["now"] -= 1
            return OK

    bounded = BoundedChatClient(Slow(), 2)
    threads = [
        threading.Thread(target=chat, args=(bounded, REQUEST, RetryPolicy())) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["peak"] == 2


def test_missing_litellm_says_how_to_install_it(monkeypatch):
    def no_litellm(name):
        raise ImportError(name)

    monkeypatch.setattr(litellm_client.importlib, "import_module", no_litellm)
    with pytest.raises(LLMUnavailable, match=r"pip install 'optforge\[litellm\]'"):
        make_chat_client(LLMConfig(backend="litellm", model="anthropic/claude"))


def test_openai_without_a_key_or_endpoint_says_what_to_set(monkeypatch):
    for name in (
        "OPTFORGE_LLM_API_KEY",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPTFORGE_LLM_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(LLMUnavailable, match="OPTFORGE_LLM_API_KEY or OPENAI_API_KEY"):
        make_chat_client(LLMConfig())


def test_environment_fills_only_what_the_config_leaves_unset(monkeypatch):
    monkeypatch.setenv("OPTFORGE_LLM_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("OPTFORGE_LLM_BASE_URL", raising=False)
    resolved = resolve_llm_config(LLMConfig())
    assert (resolved.model, resolved.base_url) == ("env-model", "http://127.0.0.1:9/v1")
    explicit = resolve_llm_config(LLMConfig(model="mine", base_url="http://127.0.0.1:8/v1"))
    assert (explicit.model, explicit.base_url) == ("mine", "http://127.0.0.1:8/v1")
    # litellm has its own variables per provider: OPENAI_BASE_URL is not ours to pass on to it
    assert resolve_llm_config(LLMConfig(backend="litellm")).base_url is None


def test_the_key_is_wrapped_so_it_never_prints(monkeypatch):
    monkeypatch.setenv("OPTFORGE_LLM_API_KEY", FAKE_KEY)
    key = llm_api_key("openai")
    assert key is not None and key.get_secret_value() == FAKE_KEY
    assert FAKE_KEY not in f"{key} {key!r}"
    monkeypatch.delenv("OPTFORGE_LLM_API_KEY")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-other")
    assert llm_api_key("litellm") is None  # litellm finds provider keys itself


def test_unknown_models_cost_none_and_dated_snapshots_their_family():
    assert cost_usd("llama3:8b", 1000, 1000) is None
    assert cost_usd("gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(0.15)
    assert cost_usd("gpt-4o-2024-08-06", 0, 1_000_000) == pytest.approx(10.0)
