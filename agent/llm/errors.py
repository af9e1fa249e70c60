"""Turn whatever an SDK raised into a one-line, key-free ChatError that says whether to retry.

litellm's exceptions subclass openai's (litellm.RateLimitError is an openai.RateLimitError, ...), so
one classifier serves both backends.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import httpx
import openai

from .client import ChatError

# Longest provider message kept in an error line: enough for "model not found: ...", short enough
# for a status display and an archive column.
MAX_DETAIL_CHARS = 200
REDACTED = "[redacted]"


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` replaced (a server may echo the key back)."""
    return text.replace(secret, REDACTED) if secret else text


def one_line(text: object, secret: str | None = None, limit: int = MAX_DETAIL_CHARS) -> str:
    line = " ".join(redact(str(text), secret).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def classify(
    exc: BaseException, *, timeout: float, secret: str | None, latency_s: float
) -> ChatError:
    """A ChatError for an exception raised by the openai SDK or litellm during one request."""
    name = type(exc).__name__
    # Order matters: litellm's Timeout is an APITimeoutError that also carries status_code 408.
    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
        return ChatError(
            f"{name}: no reply within {timeout:g}s",
            retryable=True,
            latency_s=latency_s,
            reason="timeout",
        )
    if isinstance(exc, (openai.APIConnectionError, httpx.TransportError)):
        return ChatError(
            f"{name}: {one_line(exc, secret)}",
            retryable=True,
            latency_s=latency_s,
            reason="connection",
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = one_line(_provider_message(exc), secret)
        return ChatError(
            f"{name}: HTTP {status}: {detail}",
            retryable=status == 429 or status >= 500,
            status=status,
            retry_after_s=_retry_after(exc),
            latency_s=latency_s,
            reason="status",
        )
    if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError)):
        # A 200 whose body is not a chat completion (cut off by a proxy, an HTML error page, ...):
        # treated like a 5xx, because such server faults are usually transient.
        return malformed(f"{name}: {one_line(exc, secret)}", latency_s)
    return ChatError(f"{name}: {one_line(exc, secret)}", retryable=False, latency_s=latency_s)


def malformed(detail: str, latency_s: float) -> ChatError:
    return ChatError(
        f"MalformedResponse: {detail}", retryable=True, latency_s=latency_s, reason="malformed"
    )


def _provider_message(exc: openai.APIStatusError) -> str:
    """The provider's own error message (body.error.message) rather than the SDK's long repr."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        # FastAPI-based servers (transformers serve, some proxies) answer {"detail": "..."}; the
        # SDK's own message for them is only "Error code: 400".
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
    return exc.message or str(exc)


def _retry_after(exc: Any) -> float | None:
    """Seconds from Retry-After / retry-after-ms (openai keeps headers on .response, litellm on
    .litellm_response_headers)."""
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:  # an HTTP date
            parsed = email.utils.parsedate_to_datetime(value)
            return max(0.0, parsed.timestamp() - time.time())
    except (TypeError, ValueError):
        return None
