"""Kinds are plug-ins: every registry covers every kind, and an unknown kind is one line everywhere.

A kind is tasks/kinds/<kind>.py (the trusted half), agent/proposers/kinds/<kind>.py (the proposers' half), a
contract in tasks/contracts.py, a baselines folder and two prompt templates (README, "Adding a kind").
"""

from __future__ import annotations

import inspect
import random
from importlib import resources

import pytest

from optforge.agent.config import CampaignConfig
from optforge.agent.proposers.base import ParentInfo, ProposalFailed, ProposalRequest
from optforge.agent.proposers.kinds import all_proposal_kinds, proposal_kind
from optforge.agent.proposers.mutate import MutationProposer
from optforge.agent.proposers.prompting import code_excerpt, system_prompt
from optforge.tasks import adapters, contracts
from optforge.tasks.baselines import baseline_names, baseline_source, load_baseline
from optforge.tasks.contracts import CONTRACTS, KINDS, ContractError, check_source, load_candidate
from optforge.tasks.jobs import run_job, train_spec
from optforge.tasks.kinds import UnknownKind, all_specs, kind_spec
from optforge.tasks.proxy import TASKS, study_tasks, tasks_for
from optforge.tasks.scoring import heldout_metric_name
from optforge.tasks.suites import suite
from optforge.tasks.tier0 import run_tier0


def test_every_registry_covers_every_kind_in_the_same_order():
    assert KINDS == tuple(CONTRACTS) == tuple(s.name for s in all_specs())
    assert tuple(k.name for k in all_proposal_kinds()) == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_complete_and_consistent(kind: str):
    spec, agent = kind_spec(kind), proposal_kind(kind)
    assert spec.main_function in spec.contract.functions
    # The type analysis knows every required function, with the contract's arity.
    assert {f: len(t) for f, t in agent.param_types.items()} == dict(spec.contract.functions)
    assert len(agent.slots) == spec.contract.functions[spec.main_function]
    assert agent.terms and agent.crossovers and agent.examples
    if not agent.returns_state:
        assert agent.blends, "blend_functions needs a way to combine two programs"
    # Baselines exist, load, pass tier 0; the reference and the prompt's examples are among them.
    names = baseline_names(kind)
    assert set(agent.examples) <= set(names)
    assert spec.reference[1] in baseline_names(spec.reference[0])
    assert run_tier0(load_baseline(kind, names[0])).passed
    # It runs on some task of each tier, and each such task has a metric to judge it by.
    for tier in (1, 2):
        assert suite(tier, kind)
        if spec.evaluation == "proxy":
            assert tasks_for(tier, kind) == suite(tier, kind)
            assert all(heldout_metric_name(t, kind) in ("cross_entropy", "mse", "error") for t in tasks_for(tier, kind))
        else:
            assert not tasks_for(tier, kind)  # scored on its own task, never on a proxy task
    # Export: its roots are defined where the export copies them from.
    defined = {name for module in (contracts, adapters) for name, _ in inspect.getmembers(module)}
    assert set(spec.export.roots) <= defined
    assert spec.export.public_name in spec.export.public_code
    # Prompts: its two templates exist and render.
    prompts = resources.files("optforge.agent.prompts")
    assert (prompts / f"{kind}_system.txt").is_file() and (prompts / f"{kind}_user.txt").is_file()
    assert spec.main_function in system_prompt(kind)
    if spec.evaluation == "proxy":
        assert train_spec(load_baseline(kind, names[0]), (1e-3,)).lrs == (1e-3,)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "'bogus'" in message and "optimizer" in message, message
    return message


def test_an_unknown_kind_is_one_line_on_every_path():
    source = baseline_source("optimizer", "adamw")
    assert check_source(source, "bogus") == ["unknown kind 'bogus': use one of optimizer, loss, schedule, preference_loss, scaling_rule"]
    for call in (
        lambda: kind_spec("bogus"),
        lambda: proposal_kind("bogus"),
        lambda: baseline_names("bogus"),
        lambda: tasks_for(1, "bogus"),
        lambda: study_tasks(2, "bogus"),
        lambda: heldout_metric_name(TASKS[0], "bogus"),
        lambda: code_excerpt(source, "bogus"),
    ):
        with pytest.raises(UnknownKind) as exc:
            call()
        _one_line(exc)
    with pytest.raises(ContractError) as contract_exc:
        load_candidate(source, "bogus")
    _one_line(contract_exc)
    with pytest.raises(ContractError) as job_exc:  # a job naming an unknown kind trains nothing
        run_job({"action": "train", "kind": "bogus", "source": source, "task": "mlp_digits",
                 "lrs": [1e-3], "seeds": [0], "batching": "loop"}, None)  # type: ignore[arg-type]
    _one_line(job_exc)


def test_an_unknown_kind_is_refused_by_the_config_and_the_mutation_proposer():
    with pytest.raises(ValueError, match="kind"):
        CampaignConfig(kind="bogus")  # type: ignore[arg-type]
    parent = ParentInfo(id="0" * 64, name="adamw", source=baseline_source("optimizer", "adamw"),
                        score=1.0, status="ok")
    with pytest.raises((ProposalFailed, UnknownKind)) as exc:
        MutationProposer().propose(ProposalRequest(kind="bogus", parents=(parent,)), random.Random(0))
    assert "\n" not in str(exc.value) and "bogus" in str(exc.value)
