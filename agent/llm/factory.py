"""Build the configured ChatClient: the one place that combines LLMConfig with the API key."""

from __future__ import annotations

from ..config import LLMConfig, llm_api_key, resolve_llm_config
from .client import BoundedChatClient, ChatClient
from .litellm_client import LiteLLMChatClient
from .openai_client import OpenAIChatClient


def make_chat_client(config: LLMConfig) -> BoundedChatClient:
    """The backend `config.backend` names, bounded to `config.max_concurrency` requests in flight.

    Raises LLMUnavailable with what to do when the backend cannot work (no key, litellm missing).
    """
    config = resolve_llm_config(config)
    key = llm_api_key(config.backend)
    backend: ChatClient
    if config.backend == "litellm":
        backend = LiteLLMChatClient(api_key=key, base_url=config.base_url)
    else:
        backend = OpenAIChatClient(
            api_key=key, base_url=config.base_url, timeout_s=config.timeout_s
        )
    return BoundedChatClient(backend, config.max_concurrency)
