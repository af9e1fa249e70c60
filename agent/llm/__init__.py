"""Language-model clients: a tiny ChatClient protocol, openai and litellm backends, one retry
policy, prompt building and reply parsing for the `llm` proposer."""

from .client import BoundedChatClient, ChatClient, ChatError, ChatReply, LLMUnavailable, Message
from .factory import make_chat_client
from .retry import ChatRequest, LLMCallFailed, RetryPolicy, chat

__all__ = [
    "BoundedChatClient",
    "ChatClient",
    "ChatError",
    "ChatReply",
    "ChatRequest",
    "LLMCallFailed",
    "LLMUnavailable",
    "Message",
    "RetryPolicy",
    "chat",
    "make_chat_client",
]
