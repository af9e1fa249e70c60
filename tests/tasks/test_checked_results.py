"""Results come back from the sandbox, where a candidate may have forged them: the trusted side
checks their structure and turns anything unexpected into an `invalid result`, never a crash."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from optforge.tasks.baselines import load_baseline
from optforge.tasks.contracts import load_candidate
from optforge.tasks.data import DATASETS
from optforge.tasks.jobs import (
    InvalidResult,
    checked_tier0_report,
    checked_train_result,
    pack_train_result,
)
from optforge.tasks.proxy import get_task
from optforge.tasks.tier0 import run_tier0
from optforge.tasks.training import TrainSpec, init_weights, train

TASK = "mlp_digits"
SEEDS = [0, 1]


def genuine() -> tuple[dict[str, torch.Tensor], dict]:
    """What a real train job returns for TASK, built the way the job names its tensors."""
    task = get_task(TASK)
    params, _ = init_weights(task, SEEDS)
    count = len(task.checkpoint_steps())
    tensors = {f"ckpt{i}/{name}": w.clone() for i in range(count) for name, w in params.items()}
    tensors["train_loss"] = torch.zeros(task.steps, len(SEEDS))
    return tensors, {"diverged_at": None, "checkpoints": count}


def test_a_genuine_train_result_passes_unchanged() -> None:
    tensors, meta = genuine()
    diverged_at, checkpoints = checked_train_result(TASK, len(SEEDS), tensors, meta)
    assert diverged_at is None and len(checkpoints) == meta["checkpoints"]
    name = next(iter(checkpoints[0]))
    assert torch.equal(checkpoints[-1][name], tensors[f"ckpt{meta['checkpoints'] - 1}/{name}"])


def _drop_one(t: dict, m: dict) -> None:
    del t[next(k for k in t if k.startswith("ckpt0/"))]


def _reshape_one(t: dict, m: dict) -> None:
    key = next(k for k in t if k.startswith("ckpt1/"))
    t[key] = t[key][:1]


def _as_float64(t: dict, m: dict) -> None:
    key = next(k for k in t if k.startswith("ckpt2/"))
    t[key] = t[key].double()


def _extra_checkpoint(t: dict, m: dict) -> None:
    m["checkpoints"] += 1


def _claims(t: dict, m: dict) -> None:
    m["checkpoints"] = "all of them"


def _bad_divergence(t: dict, m: dict) -> None:
    m["diverged_at"] = 1.5


def _bogus_name(t: dict, m: dict) -> None:
    t["ckptX/weight"] = torch.zeros(1)


@pytest.mark.parametrize("forge", [_drop_one, _reshape_one, _as_float64, _extra_checkpoint, _claims,
                                   _bad_divergence, _bogus_name])
def test_a_forged_train_result_is_rejected(forge) -> None:
    tensors, meta = genuine()
    forge(tensors, meta)
    with pytest.raises(InvalidResult):
        checked_train_result(TASK, len(SEEDS), tensors, meta)


def test_an_empty_result_claiming_success_is_rejected() -> None:
    with pytest.raises(InvalidResult, match="checkpoints"):
        checked_train_result(TASK, 2, {}, {"diverged_at": None, "checkpoints": 0})


def test_a_genuine_tier0_report_passes_and_forged_ones_are_rejected() -> None:
    meta = dataclasses.asdict(run_tier0(load_baseline("optimizer", "adamw")))
    assert checked_tier0_report(meta).passed
    forgeries = [
        {**meta, "passed": "yes"},
        {**meta, "state_tensors": True},
        {k: v for k, v in meta.items() if k != "fingerprint"},
        {**meta, "score": 100.0},
        {},
    ]
    for forged in forgeries:
        with pytest.raises(InvalidResult):
            checked_tier0_report(forged)


@pytest.mark.parametrize("batched", [True, False])
def test_a_genuinely_diverged_run_keeps_the_checkpoints_saved_before_it(batched: bool) -> None:
    """Training stops at the first non-finite loss; its result holds fewer checkpoints, and the
    check accepts exactly those (a forged count around them is still rejected)."""
    task = get_task(TASK)
    runaway = load_candidate(
        'HPARAMS = {"lr": 1.0}\ndef init(p):\n    return {}\n'
        "def update(g, p, s, step, hp):\n    return -g * 10.0 ** (step - 40), s\n", "optimizer")
    result = train(task, DATASETS[task.dataset]().train, TrainSpec(runaway, 1.0), SEEDS, batched)
    assert result.diverged_at is not None and 30 < result.diverged_at < task.steps
    tensors, meta = pack_train_result(result)
    assert 1 < meta["checkpoints"] < len(task.checkpoint_steps())
    diverged_at, checkpoints = checked_train_result(TASK, len(SEEDS), tensors, meta)
    assert diverged_at == result.diverged_at and len(checkpoints) == meta["checkpoints"]
    for forged in ({**meta, "checkpoints": meta["checkpoints"] + 1},
                   {**meta, "diverged_at": task.steps}, {**meta, "diverged_at": -1}):
        with pytest.raises(InvalidResult):
            checked_train_result(TASK, len(SEEDS), tensors, forged)
