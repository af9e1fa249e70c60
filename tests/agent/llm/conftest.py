"""Fixtures for the LLM proposer: a real local chat-completions server and proposers pointed at it
through each backend. Everything runs on 127.0.0.1; nothing leaves the machine."""

from __future__ import annotations

import importlib.util
import os

import pytest

from optforge.agent.config import LLMConfig
from optforge.agent.proposers.llm import LLMProposer, build_llm_proposer

from .chat_server import ChatServer

# litellm fetches its price map from GitHub when imported unless told to use its bundled copy; the
# tests are offline, so it would only wait for the network to fail.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# Recognisable, so a leak is easy to spot; tests assert it appears nowhere but the wire.
FAKE_KEY = "sk-optforge-FAKE-KEY-7f3a9c"
BACKENDS = ("openai", "litellm")
LITELLM_MISSING = "litellm is not installed: pip install 'optforge[litellm]' (CI installs it)"
# Short enough to keep the timeout tests fast, long enough for a loaded 2-core machine to answer.
TIMEOUT_S = 0.5


@pytest.fixture
def chat_server():
    server = ChatServer().start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "litellm" and importlib.util.find_spec("litellm") is None:
        pytest.skip(LITELLM_MISSING)
    return request.param


def model_for(backend: str, name: str = "fake-model") -> str:
    """litellm needs the provider in the model name to speak the OpenAI protocol to api_base."""
    return f"openai/{name}" if backend == "litellm" else name


@pytest.fixture
def fake_key(monkeypatch) -> str:
    monkeypatch.setenv("OPTFORGE_LLM_API_KEY", FAKE_KEY)
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPTFORGE_LLM_BASE_URL",
        "OPTFORGE_LLM_MODEL",
    ):
        monkeypatch.delenv(name, raising=False)
    return FAKE_KEY


@pytest.fixture
def make_proposer(chat_server, backend, fake_key):
    """Build an LLMProposer on `backend` against the local server, with tiny backoff waits."""

    def make(**overrides) -> LLMProposer:
        fields = dict(
            backend=backend,
            model=model_for(backend),
            base_url=chat_server.base_url,
            timeout_s=TIMEOUT_S,
            max_attempts=3,
            backoff_initial_s=0.01,
            backoff_max_s=0.05,
            diff_probability=0.0,
        )
        fields.update(overrides)
        return build_llm_proposer(LLMConfig(**fields))

    return make
