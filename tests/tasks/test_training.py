"""Training: every batching mode equals one member at a time; seeds are paired and deterministic.

The equivalence suite covers every bundled baseline of every kind and the 20 archived children of
benchmarks/archived_children (half of which were not batch-safe under the old stacked path): all
seeds and learning rates in one vmapped run ("vmap_lr"), one run per learning rate ("vmap") and the
loop fallback give the same weights, to rtol 1e-4 in float32 and 1e-10 in float64.
"""

import dataclasses
import json
import pathlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from optforge.tasks.baselines import baseline_names, load_baseline
from optforge.tasks.contracts import load_candidate
from optforge.tasks.data import DATASETS
from optforge.tasks.models import CharGRU
from optforge.tasks.proxy import TASKS, get_task, tasks_for
from optforge.tasks.training import TrainResult, TrainSpec, train

CHILDREN = pathlib.Path(__file__).parents[2] / "benchmarks" / "archived_children"
MANIFEST = json.loads((CHILDREN / "manifest.json").read_text())
TOLERANCE = {torch.float32: {"rtol": 1e-4, "atol": 1e-6}, torch.float64: {"rtol": 1e-10, "atol": 1e-12}}


def _short(name, steps=20):
    return dataclasses.replace(get_task(name), steps=steps, checkpoints=4)


def _assert_same_members(a: TrainResult, b: TrainResult, n_seeds: int, dtype=torch.float32) -> None:
    """Equal divergence, and equal weights at every checkpoint for each rate that did not diverge
    (a diverged rate's other seeds are skipped by the loop and carried on by a batched run)."""
    assert a.diverged_at == b.diverged_at
    assert len(a.checkpoints) == len(b.checkpoints)
    for lr_index, diverged in enumerate(a.diverged_at):
        if diverged is not None:
            continue
        rows = slice(lr_index * n_seeds, (lr_index + 1) * n_seeds)
        for ca, cb in zip(a.checkpoints, b.checkpoints, strict=True):
            for key in ca:
                torch.testing.assert_close(ca[key][rows], cb[key][rows], **TOLERANCE[dtype])


def _equivalent_in_every_mode(task, spec, seeds, dtype=torch.float32) -> None:
    split = DATASETS[task.dataset]().train
    loop = train(task, split, spec, seeds, "loop", dtype)
    for batching in ("vmap_lr", "vmap"):
        _assert_same_members(train(task, split, spec, seeds, batching, dtype), loop, len(seeds), dtype)


def _around(lr: float) -> tuple[float, float]:
    return (lr / 4, lr * 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", baseline_names("optimizer"))
def test_every_optimizer_baseline_batches_exactly(name, dtype):
    candidate = load_baseline("optimizer", name)
    spec = TrainSpec(candidate, _around(candidate.hparams["lr"]))
    _equivalent_in_every_mode(_short("deep_tanh_digits"), spec, [0, 1], dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("child", MANIFEST, ids=[c["file"][:-3] for c in MANIFEST])
def test_every_archived_child_batches_exactly(child, dtype):
    candidate = load_candidate((CHILDREN / child["file"]).read_text(), "optimizer")
    spec = TrainSpec(candidate, _around(candidate.hparams["lr"]))
    _equivalent_in_every_mode(_short("mlp_digits"), spec, [0, 1], dtype)


def test_the_mix_has_children_that_were_not_batch_safe():
    assert len(MANIFEST) >= 20
    assert sum(not c["batch_safe_in_archive"] for c in MANIFEST) >= 10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("kind", "name"), [(k, n) for k in ("loss", "schedule") for n in baseline_names(k)])
def test_every_loss_and_schedule_baseline_batches_exactly(kind, name, dtype):
    adamw = load_baseline("optimizer", "adamw")
    candidate = load_baseline(kind, name)
    spec = TrainSpec(adamw, (1e-3, 1e-2), **{kind: candidate})
    _equivalent_in_every_mode(_short("mlp_digits"), spec, [0, 1], dtype)


# A loss that reduces over the whole batch twice (a logsumexp over examples and a batch mean): under
# the old stacked path such a reduction would have mixed seeds.
BATCH_COUPLED_LOSS = """import torch
import torch.nn.functional as F
def loss(logits, targets):
    per_example = F.cross_entropy(logits, targets, reduction="none")
    return 0.5 * per_example.mean() + 0.5 * 0.1 * torch.logsumexp(per_example / 0.1, dim=0) / logits.shape[0]
"""


def test_a_loss_that_reduces_over_the_batch_batches_exactly():
    spec = TrainSpec(load_baseline("optimizer", "adamw"), (1e-3, 1e-2), loss=load_candidate(BATCH_COUPLED_LOSS, "loss"))
    _equivalent_in_every_mode(_short("mlp_digits"), spec, [0, 1, 2])


# Muon-style: the update depends on the parameter's true shape (a 2-D weight is orthogonalised,
# anything else takes a sign step). Stacked members would all look like matrices or 3-D tensors.
SHAPE_AWARE = """import torch
HPARAMS = {"lr": 0.02, "beta": 0.9}
def init(param):
    return {"m": torch.zeros_like(param)}
def update(grad, param, state, step, hp):
    m = hp["beta"] * state["m"] + grad
    if param.ndim == 2:
        x = m / (m.norm() + 1e-7)
        for _ in range(3):
            x = 1.5 * x - 0.5 * x @ x.transpose(-1, -2) @ x
        return -hp["lr"] * x * max(1.0, param.shape[0] / param.shape[1]) ** 0.5, {"m": m}
    return -hp["lr"] * torch.sign(m), {"m": m}
"""


def test_candidates_see_their_parameters_true_shapes():
    spec = TrainSpec(load_candidate(SHAPE_AWARE, "optimizer"), (0.01, 0.02))
    _equivalent_in_every_mode(_short("mlp_digits"), spec, [0, 1])


@pytest.mark.parametrize("name", ["char_transformer", "char_gru", "cnn_digits", "resmlp_teacher", "code_transformer"])
def test_every_model_family_batches_too(name):
    """Convolutions, layer norm, attention and the written-out GRU all run under vmap, equal to
    one member at a time."""
    spec = TrainSpec(load_baseline("optimizer", "adam"), (1e-3, 3e-3))
    _equivalent_in_every_mode(_short(name, steps=3), spec, [0, 1])


def test_the_new_tasks_learn_with_tuned_adam():
    """Each screen candidate task is learnable in its budget: AdamW at a sensible rate lowers the
    training loss well below its start."""
    for name, lr in (("cnn_digits", 4e-3), ("resmlp_teacher", 2e-3), ("code_transformer", 8e-3), ("char_gru", 8e-3)):
        task = get_task(name)
        result = train(task, DATASETS[task.dataset]().train, TrainSpec(load_baseline("optimizer", "adamw"), (lr,)), [0])
        start, end = result.train_loss[:5].mean().item(), result.train_loss[-10:].mean().item()
        assert result.diverged_at == [None] and end < 0.75 * start, (name, start, end)


def test_non_tensor_state_is_carried_for_every_member():
    counter = """import torch
HPARAMS = {"lr": 0.01}
def init(param):
    return {"calls": 0, "m": torch.zeros_like(param)}
def update(grad, param, state, step, hp):
    assert state["calls"] == step - 1
    m = 0.9 * state["m"] + grad
    return -hp["lr"] * m, {"m": m, "calls": state["calls"] + 1}
"""
    _equivalent_in_every_mode(_short("logreg_cancer"), TrainSpec(load_candidate(counter, "optimizer"), (0.01, 0.1)), [0, 1])


def test_code_vmap_cannot_run_raises_in_a_vmapped_mode_and_runs_in_the_loop():
    item = """import torch
HPARAMS = {"lr": 0.01}
def init(param):
    return {}
def update(grad, param, state, step, hp):
    if grad.abs().max() > 1e6:
        grad = grad * 0
    return -hp["lr"] * grad, state
"""
    task, spec = _short("logreg_cancer", steps=5), TrainSpec(load_candidate(item, "optimizer"), (0.01,))
    split = DATASETS[task.dataset]().train
    with pytest.raises(RuntimeError, match="data-dependent control flow"):
        train(task, split, spec, [0, 1], "vmap")
    assert train(task, split, spec, [0, 1], "loop").diverged_at == [None]


@settings(max_examples=6, deadline=None)
@given(
    seeds=st.lists(st.integers(0, 20), min_size=1, max_size=3, unique=True),
    lrs=st.lists(st.sampled_from([1e-3, 3e-3, 1e-2, 3e-2]), min_size=1, max_size=3, unique=True),
)
def test_a_member_does_not_depend_on_what_is_batched_beside_it(seeds, lrs):
    """Seed s at rate r trains to the same weights alone or in any batch: comparisons are paired."""
    task = _short("teacher_student", steps=10)
    split = DATASETS[task.dataset]().train
    spec = TrainSpec(load_baseline("optimizer", "lion"), tuple(lrs))
    batch = train(task, split, spec, seeds, "vmap_lr")
    s, r = len(seeds) - 1, len(lrs) - 1
    alone = train(task, split, TrainSpec(spec.optimizer, (lrs[r],)), [seeds[s]], "loop")
    for key, weights in batch.checkpoints[-1].items():
        torch.testing.assert_close(weights[r * len(seeds) + s], alone.checkpoints[-1][key][0], **TOLERANCE[torch.float32])


def test_same_seed_same_start_and_batches_whatever_the_optimizer():
    task = _short("mlp_digits", steps=5)
    split = DATASETS[task.dataset]().train
    a = train(task, split, TrainSpec(load_baseline("optimizer", "adam"), (1e-3,)), [3, 4])
    b = train(task, split, TrainSpec(load_baseline("optimizer", "sgd"), (1e-1,)), [3, 4])
    for key in a.checkpoints[0]:
        assert torch.equal(a.checkpoints[0][key], b.checkpoints[0][key])
    assert torch.equal(a.train_loss[0], b.train_loss[0])  # same init and first batch: same loss
    assert not torch.equal(a.checkpoints[0]["0.weight"][0], a.checkpoints[0]["0.weight"][1])


def test_divergence_stops_training_and_names_the_step():
    source = 'HPARAMS = {"lr": 1.0}\ndef init(p):\n    return {}\ndef update(g, p, s, step, hp):\n    return g * 1e30, s\n'
    task = _short("teacher_student")
    result = train(task, DATASETS[task.dataset]().train, TrainSpec(load_candidate(source, "optimizer"), (1.0,)), [0])
    (diverged,) = result.diverged_at
    assert diverged is not None and diverged < task.steps
    assert len(result.train_loss) == diverged + 1


def test_schedule_and_loss_candidates_change_training():
    task = _short("mlp_digits", steps=10)
    split = DATASETS[task.dataset]().train
    adamw = load_baseline("optimizer", "adamw")
    plain = train(task, split, TrainSpec(adamw, (1e-2,)), [0])
    scheduled = train(task, split, TrainSpec(adamw, (1e-2,), schedule=load_baseline("schedule", "linear_decay")), [0])
    smoothed = train(task, split, TrainSpec(adamw, (1e-2,), loss=load_baseline("loss", "label_smoothing")), [0])
    last = "2.weight"
    assert not torch.equal(plain.checkpoints[-1][last], scheduled.checkpoints[-1][last])
    assert not torch.equal(plain.checkpoints[-1][last], smoothed.checkpoints[-1][last])


def test_an_unknown_batching_is_a_clear_error():
    task = _short("logreg_cancer", steps=2)
    with pytest.raises(ValueError, match="unknown batching 'stacked': use one of vmap_lr, vmap, loop"):
        train(task, DATASETS[task.dataset]().train, TrainSpec(load_baseline("optimizer", "sgd"), (0.1,)), [0], "stacked")


def test_tiers_have_the_required_tasks():
    assert len(tasks_for(1, "optimizer")) >= 5
    tier2 = {t.name for t in tasks_for(2, "optimizer")}
    assert len(tier2) >= 4 and tier2 >= {"char_transformer", "char_gru", "mlp_digits_wide", "teacher_student_long"}
    # held-out breadth: a data set and a model family the screen does not use
    screen = tasks_for(1, "optimizer")
    assert "char_corpus" not in {t.dataset for t in screen}
    assert not any(isinstance(t.make_model(), CharGRU) for t in screen)
    assert all(t.objective != "regression" for t in tasks_for(1, "loss"))
    assert get_task("teacher_student_long").steps == 4 * get_task("teacher_student").steps
    assert len({t.full_version() for t in TASKS}) == len(TASKS)
