"""Builds the campaign's proposer from its config: `auto` picks the LLM when one is configured, else
the offline mutation proposer, and says so in one line."""

from __future__ import annotations

from ..config import CampaignConfig, llm_configured
from .base import Proposer
from .llm import build_llm_proposer
from .mix import MixProposer
from .mutate import MutationProposer

MUTATE_NOTICE = (
    "no LLM configured: using the offline mutation proposer; to use a model, set "
    "OPTFORGE_LLM_MODEL (and OPTFORGE_LLM_API_KEY or OPTFORGE_LLM_BASE_URL) or [llm] in the config"
)


def build_proposer(config: CampaignConfig) -> tuple[Proposer, str | None]:
    """The proposer and an optional one-line notice for the user."""
    name = config.proposer
    if name == "auto":
        if not llm_configured(config.llm):
            return MutationProposer(), MUTATE_NOTICE
        name = "llm"
    if name == "mutate":
        return MutationProposer(), None
    if name == "llm":
        return build_llm_proposer(config.llm), None
    members: list[tuple[Proposer, float]] = []
    for member, weight in config.mix.items():
        members.append((build_llm_proposer(config.llm) if member == "llm" else MutationProposer(), weight))
    return MixProposer(members), None
