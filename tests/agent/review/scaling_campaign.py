"""A scaling-rule campaign's archive for the report and review tests, made with the real code.

The rules are the bundled baselines (tasks/baselines/scaling_rules) and two new candidates; each
rule's hyperparameters at each width come from calling it (tasks/kinds/scaling_rule.py
`rule_table`, the guarded adapter), and its TaskResults and scores from the scaling evaluation's
own `width_result` and `aggregate` (agent/evaluation/scaling.py), fed with made-up held-out losses
instead of training runs. The losses follow a known law so that the ranking is known:

    gap(width, seed) = 0.4 ln(hidden lr / tuned lr)^2 + 0.05 ln(hidden wd / tuned wd)^2 + 0.002 (seed + 1)

(capped at 0.5), with the tuned hidden lr falling as width^-0.85 and the tuned weight decay growing
as width^0.25 from the base values at width 32. So "steeper" (hidden lr ~ width^-0.9) is the best,
then the muP-like rules, and "constant" is far behind (capped at widths 256 and 512).
"""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import replace

from optforge.agent.campaign.directory import archive_path
from optforge.agent.campaign.records import evaluation_config_hash, evaluation_record
from optforge.agent.config import CampaignConfig
from optforge.agent.evaluation.scaling import WidthRun, aggregate, width_result
from optforge.archive import ArchiveStore, CandidateRecord, EvaluationRecord
from optforge.tasks.baselines import baseline_source
from optforge.tasks.contracts import load_candidate
from optforge.tasks.kinds.scaling_rule import rule_table
from optforge.tasks.scaling import reference
from optforge.tasks.scaling.task import scaling_task

KIND = "scaling_rule"
BASE_WIDTH, BASE_LR, BASE_WD = 32, 0.01, 0.2
TUNED_EXPONENT = -0.85  # the tuned hidden lr ~ width^-0.85
WIDTHS = (64, 128, 256, 512)
COMMIT = "0123456789abcdef0123456789abcdef01234567"

STEEPER = '''"""Hidden lr falls as width^-0.9 (a little slower than muP); everything else as muP."""


def scale(width, base_width, group, base):
    ratio = width / base_width
    if group == "hidden":
        return {"lr": base["lr"] * ratio ** -0.9, "weight_decay": base["weight_decay"]}
    if group == "output":
        return {"lr": base["lr"] / ratio, "weight_decay": base["weight_decay"]}
    return {"lr": base["lr"], "weight_decay": base["weight_decay"]}
'''

READOUT_FIXED = '''"""muP on the hidden matrices, but the readout keeps its base lr and embeddings learn twice as fast."""


def scale(width, base_width, group, base):
    ratio = width / base_width
    if group == "hidden":
        return {"lr": base["lr"] / ratio, "weight_decay": base["weight_decay"]}
    if group == "embedding":
        return {"lr": 2 * base["lr"], "weight_decay": base["weight_decay"]}
    return {"lr": base["lr"], "weight_decay": base["weight_decay"]}
'''

NEW = {"steeper": STEEPER, "readout_fixed": READOUT_FIXED}
# (name, tiers): seeds first, as a campaign stores them; cascade.seeds_tier2 on for muP and constant.
RULES = (("constant", (1, 2)), ("mup", (1, 2)), ("mup_wd_sqrt", (1,)), ("mup_wd_linear", (1,)),
         ("steeper", (1, 2)), ("readout_fixed", (1,)))


def tuned_lr(width: int) -> float:
    return BASE_LR * (width / BASE_WIDTH) ** TUNED_EXPONENT


def tuned_wd(width: int) -> float:
    return BASE_WD * (width / BASE_WIDTH) ** 0.25


def optimum_loss(width: int, seed: int) -> float:
    return 3.0 - 0.2 * math.log2(width / 64) + 0.01 * seed


def reference_text() -> str:
    """A reference.json as sweep.py writes it, for widths 64-512."""
    widths = {str(w): {"best": {"lr": tuned_lr(w), "weight_decay": tuned_wd(w),
                                "losses": {str(s): optimum_loss(w, s) for s in reference.REFERENCE_SEEDS}},
                       "seconds_per_run": 10.0 * w / 64}
              for w in WIDTHS}
    return json.dumps({"base_width": BASE_WIDTH, "base": {"lr": BASE_LR, "weight_decay": BASE_WD},
                       "widths": widths})


def source(name: str) -> str:
    return NEW[name] if name in NEW else baseline_source(KIND, name)


def gap(hidden: tuple[float, float], width: int, seed: int) -> float:
    lr, wd = hidden
    return 0.4 * math.log(lr / tuned_lr(width)) ** 2 + 0.05 * math.log(wd / tuned_wd(width)) ** 2 + 0.002 * (seed + 1)


def evaluation(name: str, tier: int, ref: reference.Reference) -> EvaluationRecord:
    """The rule's tier-1 or tier-2 evaluation, as agent/evaluation/scaling.py makes it."""
    task = scaling_task(tier)
    table = rule_table(load_candidate(source(name), KIND, name), task.widths, task.base_width, ref.base())
    runs = {(w, s): WidthRun("ok", ref.at(w).losses[s] + gap(table[w]["hidden"], w, s), seconds=1.0)
            for w in task.widths for s in task.seeds}
    score, ci = aggregate(task, runs, ref)
    return EvaluationRecord(
        candidate_id="", tier=tier, status="ok", score=score, score_ci=ci,
        tasks=[width_result(task, w, table[w], runs, ref) for w in task.widths], seeds=len(task.seeds),
        task_versions={task.width_task(w): task.full_version(ref) for w in task.widths}, seconds=60.0,
    )


def make_scaling_campaign(
    directory: pathlib.Path, rules: tuple[tuple[str, tuple[int, ...]], ...] = RULES
) -> dict[str, CandidateRecord]:
    """A campaign directory whose archive holds each of `rules` (name, tiers it was scored at)."""
    ref = reference.parse(reference_text())
    config = CampaignConfig.model_validate({"kind": KIND})
    records: dict[str, CandidateRecord] = {}
    with ArchiveStore.create(archive_path(directory), config.model_dump(mode="json")) as store:
        for i, (name, tiers) in enumerate(rules):
            proposer = "mutate" if name in NEW else "seed"
            parents = (records["mup"].id,) if name in NEW and "mup" in records else ()
            record = CandidateRecord.new(source(name), KIND, name, parent_ids=parents, proposer=proposer)
            store.add_candidate(replace(record, created_at=1_000_000.0 + 100 * i))
            screened = EvaluationRecord("", 0, "ok", fingerprint=f"{i:016x}", batching="loop")
            for tier, ev in ((0, screened), *((t, evaluation(name, t, ref)) for t in tiers)):
                stored = evaluation_record(record.id, ev, code_commit=COMMIT,
                                           config_hash=evaluation_config_hash(config.evaluation))
                store.add_evaluation(replace(stored, created_at=1_000_000.0 + 100 * i + 10 * (tier + 1)))
            records[name] = record
    return records
