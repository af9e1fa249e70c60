"""Which proposer a campaign gets from its config and environment."""

from __future__ import annotations

import pytest

from optforge.agent.config import CampaignConfig, LLMConfig
from optforge.agent.llm.client import LLMUnavailable
from optforge.agent.proposers.factory import MUTATE_NOTICE, build_proposer
from optforge.agent.proposers.llm import LLMProposer
from optforge.agent.proposers.mix import MixProposer
from optforge.agent.proposers.mutate import MutationProposer

LLM_ENV = (
    "OPTFORGE_LLM_MODEL", "OPTFORGE_LLM_BASE_URL", "OPTFORGE_LLM_API_KEY", "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)


@pytest.fixture
def no_llm_env(monkeypatch):
    for name in LLM_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_auto_without_an_llm_falls_back_to_mutation_with_a_one_line_notice(no_llm_env):
    proposer, notice = build_proposer(CampaignConfig())
    assert isinstance(proposer, MutationProposer)
    assert notice == MUTATE_NOTICE and "\n" not in notice and "OPTFORGE_LLM_MODEL" in notice


def test_auto_picks_the_llm_once_a_model_and_key_are_in_the_environment(no_llm_env):
    no_llm_env.setenv("OPTFORGE_LLM_MODEL", "some-model")
    no_llm_env.setenv("OPTFORGE_LLM_API_KEY", "sk-test-not-real")
    proposer, notice = build_proposer(CampaignConfig())
    assert isinstance(proposer, LLMProposer) and notice is None
    assert proposer.name == "llm:some-model"


def test_mix_holds_both_members_by_weight(no_llm_env):
    no_llm_env.setenv("OPTFORGE_LLM_API_KEY", "sk-test-not-real")
    config = CampaignConfig(proposer="mix", mix={"llm": 0.6, "mutate": 0.4})
    proposer, _ = build_proposer(config)
    assert isinstance(proposer, MixProposer)
    members = {p.name.split(":")[0]: w for p, w in proposer.members}
    assert members == {"llm": 0.6, "mutate": 0.4}


def test_an_explicit_llm_without_a_key_is_a_clear_error(no_llm_env):
    config = CampaignConfig(proposer="llm", llm=LLMConfig(model="m"))
    with pytest.raises(LLMUnavailable, match="key"):
        build_proposer(config)
