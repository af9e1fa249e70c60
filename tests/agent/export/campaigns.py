"""Real campaign archives for the export tests: bundled baselines stored as a campaign stores them.

Candidates are the real baseline sources (tasks/baselines/...); evaluations are built from the
evaluations (EvaluationRecord/TaskResult) through campaign_records, as the campaign loop does.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType

from optforge.agent.campaign.directory import archive_path
from optforge.agent.campaign.records import evaluation_config_hash, evaluation_record
from optforge.agent.config import CampaignConfig
from optforge.agent.export import export_candidate
from optforge.archive import ArchiveStore, CandidateRecord, EvaluationRecord, TaskResult
from optforge.tasks.baselines import baseline_source

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _task(name: str, score: float, lr: float) -> TaskResult:
    return TaskResult(
        name=name,
        status="ok",
        metric="held-out cross-entropy",
        score=score,
        score_ci=(score - 0.05, score + 0.05),
        final=0.3 / score,
        final_ci=(0.28 / score, 0.32 / score),
        reference_final=0.3,
        paired_diff_ci=(-0.01, 0.02),
        lr=lr,
        reference_lr=1e-3,
        seed_finals=(0.29 / score, 0.31 / score),
        curve=(2.3, 1.0, 0.3 / score),
        reference_curve=(2.3, 1.1, 0.3),
    )


def _preference_task(tier: int, score: float) -> TaskResult:
    dpo = ((0.1, 9.4, 0.44), (0.3, 3.9, 0.38), (1.0, 1.4, 0.26), (3.0, 0.9, 0.19))
    return TaskResult(
        name="shakespeare_vader" if tier == 1 else "shakespeare_vader_heldout",
        status="ok", metric="reward_kl_auc", score=score, final=0.27 * score, reference_final=0.27,
        score_ci=(score - 0.05, score + 0.05) if tier == 2 else None,
        seed_finals=(0.27 * score,) if tier == 1 else (0.26 * score, 0.27 * score, 0.28 * score),
        frontier=tuple((b, kl, r * score) for b, kl, r in dpo), reference_frontier=dpo,
    )


def _scaling_tasks(tier: int, score: float) -> list[TaskResult]:
    widths = (64, 128, 256) if tier == 1 else (512,)
    name = "stdlib_resmlp" if tier == 1 else "stdlib_resmlp_heldout"
    return [TaskResult(name=f"{name}_w{w}", status="ok", metric="heldout_loss", score=score,
                       final=1.6 + 0.1 * (1 - score), reference_final=1.6, lr=0.0113 * 32 / w, reference_lr=0.0113 * 32 / w,
                       seed_finals=(1.6,) if tier == 1 else (1.59, 1.6, 1.61),
                       hyperparameters=(("embedding", 0.0113, 0.2), ("hidden", 0.0113 * 32 / w, 0.2),
                                        ("output", 0.0113 * 32 / w, 0.2), ("vector", 0.0113, 0.0)))
            for w in widths]


def _evaluation(kind: str, tier: int, score: float) -> EvaluationRecord:
    if kind == "scaling_rule":  # a result per width, against each width's tuned optimum: no sweep
        tasks = _scaling_tasks(tier, score)
        return EvaluationRecord(candidate_id="", tier=tier, status="ok", score=score, tasks=tasks,
                                seeds=len(tasks[0].seed_finals), task_versions={t.name: f"{t.name}-v1" for t in tasks},
                                seconds=60.0)
    if kind == "preference_loss":  # one task, scored against DPO over a beta grid: no learning rates
        task = _preference_task(tier, score)
        return EvaluationRecord(candidate_id="", tier=tier, status="ok", score=score, score_ci=task.score_ci,
                                tasks=[task], seeds=len(task.seed_finals),
                                task_versions={task.name: f"{task.name}-v1"}, seconds=90.0)
    names = ("mlp_digits", "logreg_cancer") if tier == 1 else ("mlp_digits_wide",)
    return EvaluationRecord(
        candidate_id="",  # evaluation_record sets the candidate's
        tier=tier,
        status="ok",
        score=score,
        score_ci=(score - 0.04, score + 0.04),
        tasks=[_task(name, score, lr=4e-3) for name in names],
        seeds=8 if tier == 1 else 4,
        learning_rates=[2.5e-4, 1e-3, 4e-3, 1.6e-2],
        task_versions={name: f"{name}-v1" for name in names},
        seconds=12.5,
    )


def make_campaign(
    directory: pathlib.Path, kind: str, names: list[str], new: tuple[str, ...] = ()
) -> dict[str, CandidateRecord]:
    """A campaign directory holding baselines `names` of `kind`, each scored at tiers 1 and 2; those
    also in `new` are stored as the mutation proposer's (new candidates), the rest as seeds."""
    config = CampaignConfig.model_validate({"kind": kind})
    records = {}
    with ArchiveStore.create(archive_path(directory), config.model_dump(mode="json")) as store:
        for i, name in enumerate(names):
            proposer = "mutate" if name in new else "seed"
            record = CandidateRecord.new(baseline_source(kind, name), kind, name, proposer=proposer)
            store.add_candidate(record)
            for tier, score in ((1, 1.0 + i / 10), (2, 0.95 + i / 10)):
                evaluation = _evaluation(kind, tier, score)
                store.add_evaluation(
                    evaluation_record(
                        record.id,
                        evaluation,
                        code_commit=COMMIT,
                        config_hash=evaluation_config_hash(config.evaluation),
                    )
                )
            records[name] = record
    return records


def export_baseline(directory: pathlib.Path, kind: str, name: str) -> pathlib.Path:
    """Export baseline `name` of `kind` from a fresh campaign under `directory`; the file's path."""
    campaign = directory / f"campaign-{kind}-{name}"
    record = make_campaign(campaign, kind, [name])[name]
    _, path = export_candidate(campaign, record.id[:8], directory / f"{name}_export.py")
    return path


def import_file(path: pathlib.Path) -> ModuleType:
    """Import an exported file as a user would, from its path, in this process."""
    name = f"exported_{path.stem}_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as `import` does; dataclasses look their module up
    spec.loader.exec_module(module)
    return module
