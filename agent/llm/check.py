"""`optforge llm check`: one short request to the configured endpoint, and what a failure means.

One request and no retries: a check reports what happened (retry.py is for campaigns). It goes
through the same client classes and the same ChatError classification as a campaign, so what works
here works there. Judging the reply (parse it, check its contract) is the caller's: reply parsing
lives in agent/proposers, above this layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from optforge.tasks.baselines import baseline_names, baseline_source
from optforge.tasks.kinds import kind_spec

from ..config import LLMConfig, llm_api_key, llm_api_key_variable, resolve_llm_config
from ..prompts import render
from .client import ChatError, ChatReply, Message
from .errors import one_line
from .factory import make_chat_client

# The reply budget of a check: enough for a short module, so a check costs little even on a paid
# API (min with the config's max_tokens).
CHECK_MAX_TOKENS = 512
# Listing the served models (after a 404) waits at most this long.
MODELS_TIMEOUT_S = 5.0
# Names shown from that list, at most.
MAX_MODELS_SHOWN = 12
# How servers word "no such model": OpenAI and vLLM ("does not exist"), Ollama ("not found"),
# LiteLLM's proxy ("Invalid model name").
_MODEL_MISSING = re.compile(r"model\b.*\b(not found|does not exist|invalid|unknown)|(invalid|unknown) model", re.I)
MODEL_HINT = "pass --model NAME or set OPTFORGE_LLM_MODEL"
PROVIDER_DEFAULT = "the provider's default"  # what a check calls the endpoint without a base URL


@dataclass(frozen=True)
class CheckSettings:
    """What a check sends and where, as it may be shown: the key's variable, never the key."""

    backend: str
    model: str
    base_url: str | None
    key_variable: str | None  # the environment variable the key comes from (None: no key)
    temperature: float
    max_tokens: int
    timeout_s: float

    @property
    def endpoint(self) -> str:
        return self.base_url or PROVIDER_DEFAULT


@dataclass(frozen=True)
class CheckOutcome:
    """The request's answer (`reply`), or its failure and one line saying what to do (`advice`)."""

    settings: CheckSettings
    prompt: str
    reply: ChatReply | None = None
    error: ChatError | None = None
    advice: str | None = None


def check_settings(config: LLMConfig) -> CheckSettings:
    """`config` resolved as a campaign resolves it (the environment fills what it leaves unset)."""
    config = resolve_llm_config(config)
    assert config.model is not None  # resolve_llm_config always names one
    return CheckSettings(
        backend=config.backend,
        model=config.model,
        base_url=config.base_url,
        key_variable=llm_api_key_variable(config.backend),
        temperature=config.temperature,
        max_tokens=min(config.max_tokens, CHECK_MAX_TOKENS),
        timeout_s=config.timeout_s,
    )


def smallest_baseline(kind: str) -> tuple[str, str]:
    """(name, source) of the shortest bundled baseline of `kind`: the contract at its briefest."""
    sources = {name: baseline_source(kind, name) for name in baseline_names(kind)}
    name = min(sources, key=lambda n: (len(sources[n]), n))
    return name, sources[name]


def check_prompt(kind: str) -> str:
    """The check's one user message: the kind's shortest baseline, and a request for a valid one."""
    name, source = smallest_baseline(kind)
    return render(
        "check_user", kind=kind, summary=kind_spec(kind).summary, name=name, example=source.strip()
    )


def run_check(config: LLMConfig, kind: str) -> CheckOutcome:
    """Send the check's one request. Raises LLMUnavailable when the backend cannot work as
    configured (no key and no base URL, litellm missing); every other failure is in the outcome."""
    settings = check_settings(config)
    client = make_chat_client(config)
    prompt = check_prompt(kind)
    try:
        reply = client.complete(
            [Message("user", prompt)],
            model=settings.model,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            timeout=settings.timeout_s,
        )
    except ChatError as error:
        key = llm_api_key(settings.backend)
        return CheckOutcome(settings, prompt, error=error, advice=advice(error, settings, key))
    return CheckOutcome(settings, prompt, reply=reply)


def advice(error: ChatError, settings: CheckSettings, key: SecretStr | None) -> str:
    """One line: what the failure means and what to do about it (never the key)."""
    where, detail = settings.endpoint, error.message
    if error.reason == "timeout":
        return (
            f"no reply from {where} within {settings.timeout_s:g}s: raise --timeout, or check the "
            "server's load (a local server's first request may load the model)"
        )
    if error.reason == "connection":
        if settings.base_url:
            return (
                f"cannot connect to {settings.base_url} ({detail}): check the server is running "
                "there and the URL's host, port and path"
            )
        return f"cannot reach the provider ({detail}): check this machine's network connection"
    if error.reason == "malformed":
        return (
            f"{where} answered, but not with a chat completion ({detail}): check the base URL is "
            "the server's OpenAI-compatible API (it usually ends in /v1)"
        )
    if error.status in (401, 403):
        if settings.key_variable:
            return (
                f"the server refused the API key from {settings.key_variable} ({detail}): check "
                "that variable holds a valid key for this endpoint"
            )
        names = "OPTFORGE_LLM_API_KEY" + (" or OPENAI_API_KEY" if settings.backend == "openai" else "")
        return f"the server wants an API key ({detail}): set {names}"
    said_missing = error.status == 404 or (
        error.status in (400, 422) and _MODEL_MISSING.search(detail) is not None
    )
    # Servers word a wrong model many ways (transformers serve: "Server is pinned to 'X'; requested
    # 'Y'"), so any 400 or 422 from a server that lists other models is most likely that too.
    if said_missing or (error.status in (400, 422) and settings.base_url):
        about_model = _missing_model(error, settings, key, said_missing=said_missing)
        if about_model is not None:
            return about_model
    if error.status == 429:
        return f"rate-limited or out of quota ({detail}): wait and retry, or check the account"
    if error.status is not None and error.status >= 500:
        return f"the server failed ({detail}): check its log"
    return f"the request failed ({detail}): check the settings above"


def _missing_model(
    error: ChatError, settings: CheckSettings, key: SecretStr | None, *, said_missing: bool
) -> str | None:
    """A wrong model: name the models the server serves, when it lists them (one GET). When the
    server did not say the model is missing (`said_missing` False: a 400 or 422 worded otherwise),
    None unless it lists models and not this one."""
    detail, model = error.message, settings.model
    if not settings.base_url:
        return f"{detail}: check the model name: {MODEL_HINT}"
    served = served_models(settings.base_url, key, min(MODELS_TIMEOUT_S, settings.timeout_s))
    if not said_missing and (not served or model in served or model.rpartition("/")[2] in served):
        return None
    if not served:
        return (
            f"{detail}: check the model name ({MODEL_HINT}) and the base URL {settings.base_url} "
            "(an OpenAI-compatible server's usually ends in /v1)"
        )
    # litellm names the provider first ("openai/<model>"); the server knows the bare name.
    prefix, _, bare = model.rpartition("/") if settings.backend == "litellm" else ("", "", model)
    if bare in served or model in served:
        return f"{detail}, though the server lists {model!r}: check the base URL {settings.base_url}"
    shown = ", ".join(served[:MAX_MODELS_SHOWN])
    if len(served) > MAX_MODELS_SHOWN:
        shown += f" (and {len(served) - MAX_MODELS_SHOWN} more)"
    hint = MODEL_HINT.replace("NAME", f"{prefix}/NAME") if prefix else MODEL_HINT
    return f"the server does not serve {model!r}; the server serves: {shown}; {hint}"


def served_models(base_url: str, key: SecretStr | None, timeout: float) -> list[str] | None:
    """The model ids `GET <base_url>/models` lists (the OpenAI protocol's), or None when the server
    does not answer that with a list."""
    secret = key.get_secret_value() if key else None
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/models", headers=headers, timeout=timeout)
        response.raise_for_status()
        entries = response.json()["data"]
        ids = [one_line(entry["id"], secret) for entry in entries if entry.get("id")]
    except (httpx.HTTPError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return ids or None
