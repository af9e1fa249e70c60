"""ChatClient over the `openai` SDK: OpenAI itself or any OpenAI-compatible server (vLLM, Ollama,
llama.cpp server, ...) through `base_url`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx
import openai
from pydantic import SecretStr

from .client import ChatReply, LLMUnavailable, Message
from .errors import classify, malformed, redact
from .prices import cost_usd

# Local OpenAI-compatible servers ignore the key, but the SDK refuses to start without one; this is
# the placeholder vLLM's documentation uses.
NO_KEY = "EMPTY"


class OpenAIChatClient:
    def __init__(self, *, api_key: SecretStr | None, base_url: str | None, timeout_s: float):
        if api_key is None and base_url is None:
            raise LLMUnavailable(
                "no API key for OpenAI: set OPTFORGE_LLM_API_KEY or OPENAI_API_KEY, or point "
                "llm.base_url at an OpenAI-compatible server"
            )
        self._secret = api_key.get_secret_value() if api_key else None
        # max_retries=0: retry.py is the only place that retries, so attempts do not multiply.
        self._client = openai.OpenAI(
            api_key=self._secret or NO_KEY, base_url=base_url, max_retries=0, timeout=timeout_s
        )

    def __repr__(self) -> str:  # never the key (the SDK client holds it)
        return f"OpenAIChatClient(base_url={str(self._client.base_url)!r})"

    def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float,
        max_tokens: int,
        timeout: float,
    ) -> ChatReply:
        started = time.perf_counter()
        try:
            response = self._client.chat.completions.create(
                model=model,
                messages=[{"role": m.role, "content": m.content} for m in messages],  # type: ignore[misc]
                temperature=temperature,
                max_tokens=max_tokens,
                timeout=timeout,
            )
        except (openai.OpenAIError, httpx.HTTPError, ValueError) as exc:
            # ValueError: the SDK lets json.JSONDecodeError out on a truncated body.
            raise classify(
                exc, timeout=timeout, secret=self._secret, latency_s=time.perf_counter() - started
            ) from None  # the SDK's exception chain is not ours to vouch for (key-free)
        latency = time.perf_counter() - started
        # A server that echoes the key into its reply must not get it into the archive (replies are
        # stored, the rejected ones too).
        text = redact(reply_text(response, latency), self._secret)
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        return ChatReply(
            text, tokens_in, tokens_out, cost_usd(model, tokens_in, tokens_out), latency
        )


def reply_text(response: Any, latency_s: float) -> str:
    """The first choice's message text, or a retryable MalformedResponse when the body is not a
    chat completion (the SDK returns a bare string for non-JSON bodies and None fields for JSON
    without choices)."""
    choices = getattr(response, "choices", None)
    if not choices:
        kind = type(response).__name__
        raise malformed(f"the body has no choices (got {kind})", latency_s)
    content = getattr(getattr(choices[0], "message", None), "content", None)
    if not isinstance(content, str):
        raise malformed("the first choice has no message content", latency_s)
    return content
