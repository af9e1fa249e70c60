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
    return tensors, {"diverged_at": [None], "checkpoints": count}


def test_a_genuine_train_result_passes_unchanged() -> None:
    tensors, meta = genuine()
    checked = checked_train_result(TASK, 1, len(SEEDS), tensors, meta)
    assert checked.diverged_at == [None] and len(checked.checkpoints[0]) == meta["checkpoints"]
    name = next(iter(checked.checkpoints[0][0]))
    assert torch.equal(checked.checkpoints[0][-1][name], tensors[f"ckpt{meta['checkpoints'] - 1}/{name}"])


def test_members_of_a_batched_sweep_are_split_by_learning_rate() -> None:
    """Member l * S + s is seed s at learning rate l: each rate gets its own [S, ...] slices."""
    tensors, meta = genuine()  # 2 members: read as 2 learning rates x 1 seed
    checked = checked_train_result(TASK, 2, 1, tensors, {**meta, "diverged_at": [None, None]})
    name = next(iter(checked.checkpoints[0][0]))
    for lr_index in (0, 1):
        assert torch.equal(checked.checkpoints[lr_index][-1][name], tensors[f"ckpt0/{name}"][lr_index : lr_index + 1])
    with pytest.raises(InvalidResult):  # one divergence entry per learning rate, no fewer
        checked_train_result(TASK, 2, 1, tensors, meta)


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
    m["diverged_at"] = [1.5]


def _divergence_not_a_list(t: dict, m: dict) -> None:
    m["diverged_at"] = None


def _bogus_name(t: dict, m: dict) -> None:
    t["ckptX/weight"] = torch.zeros(1)


@pytest.mark.parametrize("forge", [_drop_one, _reshape_one, _as_float64, _extra_checkpoint, _claims,
                                   _bad_divergence, _divergence_not_a_list, _bogus_name])
def test_a_forged_train_result_is_rejected(forge) -> None:
    tensors, meta = genuine()
    forge(tensors, meta)
    with pytest.raises(InvalidResult):
        checked_train_result(TASK, 1, len(SEEDS), tensors, meta)


def test_an_empty_result_claiming_success_is_rejected() -> None:
    with pytest.raises(InvalidResult, match="checkpoints"):
        checked_train_result(TASK, 1, 2, {}, {"diverged_at": [None], "checkpoints": 0})


def test_a_genuine_tier0_report_passes_and_forged_ones_are_rejected() -> None:
    meta = dataclasses.asdict(run_tier0(load_baseline("optimizer", "adamw")))
    assert checked_tier0_report(meta).passed
    forgeries = [
        {**meta, "passed": "yes"},
        {**meta, "state_tensors": True},
        {**meta, "batching": "everything at once"},
        {k: v for k, v in meta.items() if k != "fingerprint"},
        {**meta, "score": 100.0},
        {},
    ]
    for forged in forgeries:
        with pytest.raises(InvalidResult):
            checked_tier0_report(forged)


@pytest.mark.parametrize("batching", ["vmap_lr", "vmap", "loop"])
def test_a_genuinely_diverged_run_keeps_the_checkpoints_saved_before_it(batching: str) -> None:
    """Training stops at the first non-finite loss; its result holds fewer checkpoints, and the
    check accepts exactly those (a forged count around them is still rejected)."""
    task = get_task(TASK)
    runaway = load_candidate(
        'HPARAMS = {"lr": 1.0}\ndef init(p):\n    return {}\n'
        "def update(g, p, s, step, hp):\n    return -g * 10.0 ** (step - 40), s\n", "optimizer")
    result = train(task, DATASETS[task.dataset]().train, TrainSpec(runaway, (1.0,)), SEEDS, batching)
    (diverged,) = result.diverged_at
    assert diverged is not None and 30 < diverged < task.steps
    tensors, meta = pack_train_result(result)
    assert 1 < meta["checkpoints"] < len(task.checkpoint_steps())
    checked = checked_train_result(TASK, 1, len(SEEDS), tensors, meta)
    assert checked.diverged_at == [diverged] and len(checked.checkpoints[0]) == meta["checkpoints"]
    for forged in ({**meta, "checkpoints": meta["checkpoints"] + 1},
                   {**meta, "diverged_at": [task.steps]}, {**meta, "diverged_at": [-1]}):
        with pytest.raises(InvalidResult):
            checked_train_result(TASK, 1, len(SEEDS), tensors, forged)


@pytest.mark.parametrize("batching", ["vmap_lr", "vmap", "loop"])
def test_a_rate_that_diverges_beside_one_that_does_not_keeps_every_checkpoint(batching: str) -> None:
    """Batched learning rates: the run goes on while any rate is finite, so the result holds all
    checkpoints and names the step where the diverging rate failed."""
    task = dataclasses.replace(get_task(TASK), steps=50)
    runaway = load_candidate(
        'HPARAMS = {"lr": 1.0}\ndef init(p):\n    return {}\n'
        "def update(g, p, s, step, hp):\n    return -g * hp['lr'] * 10.0 ** (step - 40), s\n", "optimizer")
    result = train(task, DATASETS[task.dataset]().train, TrainSpec(runaway, (1e-12, 1.0)), SEEDS, batching)
    assert result.diverged_at[0] is None and result.diverged_at[1] is not None
    assert len(result.checkpoints) == len(task.checkpoint_steps())
    assert torch.isfinite(result.checkpoints[-1]["0.weight"][: len(SEEDS)]).all()
