"""The chat-client protocol every LLM backend implements, its records, and a concurrency bound.

A backend makes exactly one HTTP request per `complete` call and reports a failure as a
`ChatError` that says whether trying again could help; retries live in one place (retry.py), so
attempts never multiply across layers (the SDKs' own retries are off).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]
# What went wrong, for advice that depends on it (`optforge llm check`): no reply in time, no
# connection, an HTTP error status, a body that is not a chat completion, or anything else.
FailureReason = Literal["timeout", "connection", "status", "malformed", "other"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


def transcript(messages: Sequence[Message]) -> str:
    """The conversation as one text: "[role]\ncontent" blocks joined by blank lines. What a
    candidate (Proposal.prompt) and each LLM call record (LLMCallRecord.prompt) keep of a request:
    the messages only, never a header, so never the API key."""
    return "\n\n".join(f"[{m.role}]\n{m.content}" for m in messages)


@dataclass(frozen=True)
class ChatReply:
    """One HTTP request's answer. Not a call record: the record (archive LLMCallRecord, written by
    retry.py) is one logical call, its latency spanning every retry, and failed calls have one too."""

    text: str
    tokens_in: int
    tokens_out: int
    cost_usd: float | None  # None when the price of the model is unknown
    latency_s: float


class ChatError(Exception):
    """One failed request, classified. The message is one line and never contains the API key.

    `retryable`: a rate limit (429), a server error (5xx), a timeout, a connection failure or a
    malformed body, i.e. something that may go away; any other 4xx will fail the same way again.
    `retry_after_s`: the server's Retry-After, when it sent one.
    `kind` names the failure in summaries ("RateLimitError 429", "APITimeoutError").
    `reason` says which sort of failure it is (FailureReason), whatever the SDK called it.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
        latency_s: float = 0.0,
        reason: FailureReason = "other",
    ):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
        self.latency_s = latency_s
        self.reason: FailureReason = reason

    @property
    def kind(self) -> str:
        name = self.message.split(":", 1)[0]
        return f"{name} {self.status}" if self.status is not None else name


class LLMUnavailable(Exception):
    """The backend cannot be used as configured (no API key, litellm not installed, ...): a user
    error, printed as one line that says what to do."""


class ChatClient(Protocol):
    def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float,
        max_tokens: int,
        timeout: float,
    ) -> ChatReply:
        """One request; raises ChatError on any failure of the provider or the transport."""
        ...


class BoundedChatClient:
    """Wraps a ChatClient so that at most `limit` requests are in flight at once, across threads.

    Only the request holds a slot, not a retry's backoff wait, so one rate-limited call does not
    block the others.
    """

    def __init__(self, client: ChatClient, limit: int):
        if limit < 1:
            raise ValueError(f"concurrency limit must be at least 1, got {limit}")
        self._client = client
        self._slots = threading.BoundedSemaphore(limit)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float,
        max_tokens: int,
        timeout: float,
    ) -> ChatReply:
        with self._slots:
            return self._client.complete(
                messages,
                model=model,
                temperature=temperature,
                max_tokens=max_tokens,
                timeout=timeout,
            )
