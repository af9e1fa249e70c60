"""ChatClient over litellm (the optional extra `optforge[litellm]`): every provider litellm knows
(Anthropic, Gemini, Bedrock, ... or "openai/<model>" with an api_base), with litellm's price map for
the cost of each call."""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import httpx
import openai
from pydantic import SecretStr

from .client import ChatReply, LLMUnavailable, Message
from .errors import classify, redact
from .openai_client import reply_text

INSTALL_HINT = "the litellm backend needs litellm: pip install 'optforge[litellm]'"


def import_litellm() -> ModuleType:
    """litellm, imported on first use: it is optional and takes seconds to import."""
    try:
        litellm = importlib.import_module("litellm")
    except ImportError:
        raise LLMUnavailable(INSTALL_HINT) from None
    # litellm prints a "Give Feedback / Get Help" banner to stdout on every error; our errors are
    # recorded as data and shown by our own display.
    litellm.suppress_debug_info = True  # type: ignore[attr-defined]
    return litellm


class LiteLLMChatClient:
    def __init__(self, *, api_key: SecretStr | None, base_url: str | None):
        self._litellm = import_litellm()
        self._secret = api_key.get_secret_value() if api_key else None
        self._base_url = base_url

    def __repr__(self) -> str:  # never the key
        return f"LiteLLMChatClient(base_url={self._base_url!r})"

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
            response = self._litellm.completion(
                model=model,
                messages=[{"role": m.role, "content": m.content} for m in messages],
                temperature=temperature,
                max_tokens=max_tokens,
                timeout=timeout,
                api_base=self._base_url,
                api_key=self._secret,  # None: litellm reads the provider's own variable
                # retry.py is the only place that retries: litellm's wrapper and the openai SDK
                # inside it must not retry as well.
                num_retries=0,
                max_retries=0,
                # Providers reject parameters they do not support (temperature on o-series, ...);
                # dropping them beats failing every call.
                drop_params=True,
            )
        except (openai.OpenAIError, httpx.HTTPError, ValueError) as exc:
            raise classify(
                exc, timeout=timeout, secret=self._secret, latency_s=time.perf_counter() - started
            ) from None
        latency = time.perf_counter() - started
        text = redact(reply_text(response, latency), self._secret)  # replies are stored: never the key
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        return ChatReply(text, tokens_in, tokens_out, self._cost(response), latency)

    def _cost(self, response: Any) -> float | None:
        try:
            return float(self._litellm.completion_cost(completion_response=response))
        except Exception:  # litellm raises for models missing from its price map: cost unknown
            return None
