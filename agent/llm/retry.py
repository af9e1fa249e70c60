"""The one place that retries LLM requests, wrapping any ChatClient.

Policy: retry what may go away (429, 5xx, timeouts, connection errors, malformed bodies) with
exponential backoff and "equal jitter" (half the backoff fixed, half random, so that clients that
failed together do not retry together, yet no retry comes at once after a rate limit); honour the
server's Retry-After; never retry any other 4xx (a bad request or a wrong key fails the same way
again); stop after `max_attempts`. One logical call, however many attempts, is one LLMCallRecord.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tenacity

from optforge.archive import LLMCallRecord

from ..config import LLMConfig
from .client import ChatClient, ChatError, ChatReply, Message, transcript

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_s: float = 1.0
    max_s: float = 60.0

    @classmethod
    def from_config(cls, config: LLMConfig) -> RetryPolicy:
        return cls(config.max_attempts, config.backoff_initial_s, config.backoff_max_s)

    def wait_s(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.max_s, self.initial_s * 2 ** (attempt - 1))
        wait = ceiling / 2 + rng.uniform(0, ceiling / 2)
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return min(wait, self.max_s)


class LLMCallFailed(Exception):
    """Every attempt failed (or one failed that is not worth retrying). `call.error` says how each
    attempt failed; the message is the same line."""

    def __init__(self, call: LLMCallRecord):
        super().__init__(call.error)
        self.call = call


@dataclass(frozen=True)
class ChatRequest:
    messages: Sequence[Message]
    model: str
    temperature: float
    max_tokens: int
    timeout: float


def chat(
    client: ChatClient,
    request: ChatRequest,
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> tuple[ChatReply, LLMCallRecord]:
    """Send `request`, retrying per `policy`. Returns the reply and its record; raises
    LLMCallFailed (carrying the record) when no attempt succeeded.

    The record's latency is the whole call's wall time, backoff waits included: what the campaign
    actually waited for this reply. It keeps the request's conversation (`transcript`) and the
    reply's text (None for a failed call); the caller adds why it rejected a reply, if it did.
    """
    jitter = rng or random.Random()
    failures: list[ChatError] = []
    started = time.perf_counter()

    def attempt() -> ChatReply:
        try:
            return client.complete(
                request.messages,
                model=request.model,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                timeout=request.timeout,
            )
        except ChatError as exc:
            failures.append(exc)
            raise

    def wait(state: tenacity.RetryCallState) -> float:
        return policy.wait_s(state.attempt_number, failures[-1].retry_after_s, jitter)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        pause = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "LLM request failed (%s), attempt %d of %d; retrying in %.2fs",
            failures[-1].message,
            state.attempt_number,
            policy.max_attempts,
            pause,
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.max_attempts),
        wait=wait,
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, ChatError) and e.retryable),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    prompt = transcript(request.messages)
    try:
        reply = retrying(attempt)
    except ChatError:
        elapsed = time.perf_counter() - started
        call = LLMCallRecord(None, request.model, 0, 0, None, elapsed, error=failure_line(failures),
                             prompt=prompt)
        raise LLMCallFailed(call) from None
    elapsed = time.perf_counter() - started
    call = LLMCallRecord(None, request.model, reply.tokens_in, reply.tokens_out, reply.cost_usd,
                         elapsed, prompt=prompt, reply=reply.text)
    return reply, call


def failure_line(failures: Sequence[ChatError]) -> str:
    """One line that names every attempt's failure, the last one in full, e.g.
    "InternalServerError: HTTP 500: boom [3 attempts: RateLimitError 429, APITimeoutError,
    InternalServerError 500]"."""
    last = failures[-1]
    if len(failures) == 1:
        return last.message if last.retryable else f"{last.message} [not retried]"
    kinds = ", ".join(f.kind for f in failures)
    suffix = "" if last.retryable else "; the last is not retryable"
    return f"{last.message} [{len(failures)} attempts: {kinds}{suffix}]"
