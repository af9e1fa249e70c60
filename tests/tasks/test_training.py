"""Training: batched seeds equal the loop fallback; seeds are paired and deterministic."""

import pytest
import torch

from optforge.tasks.baselines import load_baseline
from optforge.tasks.contracts import load_candidate
from optforge.tasks.data import DATASETS
from optforge.tasks.proxy import TASKS, get_task, tasks_for
from optforge.tasks.training import TrainSpec, train


def _short(name, steps=20):
    from dataclasses import replace

    return replace(get_task(name), steps=steps, checkpoints=4)


@pytest.mark.parametrize("name", ["illcond_quadratic", "logreg_cancer", "mlp_digits", "deep_tanh_digits", "teacher_student"])
@pytest.mark.parametrize("optimizer", ["adamw", "lion", "nesterov"])
def test_batched_seeds_equal_one_seed_at_a_time(name, optimizer):
    task = _short(name)
    split = DATASETS[task.dataset]().train
    spec = TrainSpec(load_baseline("optimizer", optimizer), lr=1e-3)
    batched = train(task, split, spec, [0, 1, 2], batched=True)
    looped = train(task, split, spec, [0, 1, 2], batched=False)
    assert len(batched.checkpoints) == len(looped.checkpoints) == 5
    for a, b in zip(batched.checkpoints, looped.checkpoints, strict=True):
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batched.train_loss, looped.train_loss, rtol=1e-4, atol=1e-5)


def test_char_transformer_batches_too():
    task = _short("char_transformer", steps=3)
    split = DATASETS[task.dataset]().train
    spec = TrainSpec(load_baseline("optimizer", "adam"), lr=1e-3)
    a = train(task, split, spec, [0, 1], batched=True)
    b = train(task, split, spec, [0, 1], batched=False)
    torch.testing.assert_close(a.checkpoints[-1], b.checkpoints[-1], rtol=1e-4, atol=1e-5)


def test_same_seed_same_start_and_batches_whatever_the_optimizer():
    task = _short("mlp_digits", steps=5)
    split = DATASETS[task.dataset]().train
    a = train(task, split, TrainSpec(load_baseline("optimizer", "adam"), 1e-3), [3, 4], True)
    b = train(task, split, TrainSpec(load_baseline("optimizer", "sgd"), 1e-1), [3, 4], True)
    for key in a.checkpoints[0]:
        assert torch.equal(a.checkpoints[0][key], b.checkpoints[0][key])
    assert torch.equal(a.train_loss[0], b.train_loss[0])  # same init and first batch: same loss
    assert not torch.equal(a.checkpoints[0]["0.weight"][0], a.checkpoints[0]["0.weight"][1])


def test_divergence_stops_training_and_names_the_step():
    source = 'HPARAMS = {"lr": 1.0}\ndef init(p):\n    return {}\ndef update(g, p, s, step, hp):\n    return g * 1e30, s\n'
    task = _short("teacher_student")
    result = train(task, DATASETS[task.dataset]().train, TrainSpec(load_candidate(source, "optimizer"), 1.0), [0], True)
    assert result.diverged_at is not None and result.diverged_at < task.steps


def test_schedule_and_loss_candidates_change_training():
    task = _short("mlp_digits", steps=10)
    split = DATASETS[task.dataset]().train
    adamw = load_baseline("optimizer", "adamw")
    plain = train(task, split, TrainSpec(adamw, 1e-2), [0], True)
    scheduled = train(task, split, TrainSpec(adamw, 1e-2, schedule=load_baseline("schedule", "linear_decay")), [0], True)
    smoothed = train(task, split, TrainSpec(adamw, 1e-2, loss=load_baseline("loss", "label_smoothing")), [0], True)
    last = "2.weight"
    assert not torch.equal(plain.checkpoints[-1][last], scheduled.checkpoints[-1][last])
    assert not torch.equal(plain.checkpoints[-1][last], smoothed.checkpoints[-1][last])


def test_tiers_have_the_required_tasks():
    assert len(tasks_for(1, "optimizer")) >= 5
    assert {t.name for t in tasks_for(2, "optimizer")} >= {"char_transformer", "mlp_digits_wide", "teacher_student_long"}
    assert all(t.objective != "regression" for t in tasks_for(1, "loss"))
    assert get_task("teacher_student_long").steps == 4 * get_task("teacher_student").steps
    assert len({t.full_version() for t in TASKS}) == len(TASKS)
