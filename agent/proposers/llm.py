"""The `llm` proposer: prompt a language model, parse its reply, check the contract, repair once.

One proposal is at most two logical LLM calls: the request, and, when the reply cannot be parsed,
its SEARCH/REPLACE edits do not apply, or its code breaks the contract, one repair round that sends
the errors back and asks for the complete module. Each logical call retries transient failures
itself (agent/llm/retry.py). Everything spent is recorded: a success carries its LLMCalls, a
failure raises ProposalFailed carrying them. Each call keeps its prompt and reply, and a reply the
proposer could not use says why in one line (`rejected`), so a user can see what the model said.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Sequence

from optforge.agent.proposers.prompting import Mode, build_messages, repair_message
from optforge.agent.proposers.replies import (
    CUT_OFF_NOTE,
    DiffError,
    ReplyError,
    apply_diff,
    parse_reply,
)
from optforge.archive import LLMCallRecord
from optforge.tasks.contracts import check_source, source_hash

from ..config import LLMConfig, resolve_llm_config
from ..llm.client import ChatClient, Message, transcript
from ..llm.factory import make_chat_client
from ..llm.retry import ChatRequest, LLMCallFailed, RetryPolicy, chat
from .base import Proposal, ProposalFailed, ProposalRequest


class ContractViolation(ReplyError):
    """Parsed code that fails the candidate contract; one error line per problem."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


class LLMProposer:
    def __init__(
        self,
        client: ChatClient,
        config: LLMConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not config.model:
            raise ValueError("LLMConfig.model is unset: pass resolve_llm_config(config) instead")
        self.client = client
        self.config = config
        self.model = config.model
        self.name = f"llm:{config.model}"
        self._policy = RetryPolicy.from_config(config)
        self._sleep = sleep  # injected so tests do not wait out real backoffs
        # The prompt's share of the model's context window: what max_tokens leaves of it.
        window = config.context_tokens
        self._budget = window - config.max_tokens if window is not None else None

    def propose(self, request: ProposalRequest, rng: random.Random) -> Proposal:
        mode = choose_mode(request, self.config.diff_probability, rng)
        messages = list(
            build_messages(request, mode, self.config.history_size, budget_tokens=self._budget)
        )
        calls: list[LLMCallRecord] = []
        reply = self._ask(messages, calls)
        try:
            return self._proposal(request, messages, reply, calls)
        except ReplyError as exc:
            first = exc
            _reject(calls, exc)
        messages += [
            Message("assistant", reply),
            repair_message(_error_lines(first), diff_failed=isinstance(first, DiffError)),
        ]
        reply = self._ask(messages, calls)
        try:
            return self._proposal(request, messages, reply, calls)
        except ReplyError as exc:
            _reject(calls, exc)
            raise ProposalFailed(
                f"unusable reply after a repair round: {exc} (first reply: {first})", tuple(calls)
            ) from None

    def _ask(self, messages: Sequence[Message], calls: list[LLMCallRecord]) -> str:
        request = ChatRequest(
            messages=tuple(messages),
            model=self.model,
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            timeout=self.config.timeout_s,
        )
        try:
            reply, call = chat(self.client, request, self._policy, sleep=self._sleep)
        except LLMCallFailed as exc:
            calls.append(exc.call)
            raise ProposalFailed(f"LLM call failed: {exc.call.error}", tuple(calls)) from None
        calls.append(call)
        return reply.text

    def _proposal(
        self,
        request: ProposalRequest,
        messages: Sequence[Message],
        reply: str,
        calls: list[LLMCallRecord],
    ) -> Proposal:
        """The Proposal in `reply`, or ReplyError (DiffError, ContractViolation) saying why not."""
        parsed = parse_reply(reply)
        if parsed.code is not None:
            source = parsed.code
        elif parsed.diff is not None and request.parents:
            source = apply_diff(request.parents[0].source, parsed.diff)
        else:
            raise ReplyError(
                'the reply has edits but there is no parent to apply them to: send "code"'
            )
        source = source.strip("\n") + "\n"
        errors = check_source(source, request.kind)
        if errors:
            raise ContractViolation([CUT_OFF_NOTE, *errors] if parsed.cut_off else errors)
        return Proposal(
            source=source,
            name=parsed.name or f"{request.kind}_{source_hash(source)[:8]}",
            proposer=self.name,
            parent_ids=tuple(p.id for p in request.parents),
            thought=parsed.thought,
            prompt=transcript(messages),
            reply=reply,
            llm_calls=tuple(calls),
        )


def choose_mode(request: ProposalRequest, diff_probability: float, rng: random.Random) -> Mode:
    """Diff mode edits exactly one parent; a crossover (or no parent) is always a rewrite.

    One draw from `rng` every time, so the stream does not depend on the number of parents.
    """
    draw = rng.random()
    return "diff" if len(request.parents) == 1 and draw < diff_probability else "rewrite"


def build_llm_proposer(config: LLMConfig) -> LLMProposer:
    """The proposer as configured: model and base URL resolved from the environment where unset,
    the backend built, requests bounded to `max_concurrency` in flight."""
    resolved = resolve_llm_config(config)
    return LLMProposer(make_chat_client(resolved), resolved)


def _error_lines(error: ReplyError) -> list[str]:
    return error.errors if isinstance(error, ContractViolation) else [str(error)]


def _reject(calls: list[LLMCallRecord], error: ReplyError) -> None:
    """Mark the last call (the one whose reply is unusable) with why, before anything stores it."""
    calls[-1] = dataclasses.replace(calls[-1], rejected=_rejection(error))


def _rejection(error: ReplyError) -> str:
    """Why a reply was rejected, in one line: the ReplyError's message, or the contract's errors
    joined by "; " (a multi-line message, e.g. a syntax error's, is folded onto one line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines) or type(error).__name__
