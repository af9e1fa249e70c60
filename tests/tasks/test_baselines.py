"""The bundled baselines: they meet their contracts, load, and compute what their papers say."""

from __future__ import annotations

import ast
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from optforge.tasks.baselines import baseline_names, baseline_source, load_baseline
from optforge.tasks.contracts import check_source, load_candidate

EXPECTED = {
    "optimizer": [
        "adafactor", "adagrad", "adam", "adamw", "lion", "muon", "nesterov", "normuon", "rmsprop",
        "sgd", "signsgd",
    ],
    "loss": ["cross_entropy", "focal", "label_smoothing"],
    "schedule": ["constant", "cosine_warmup", "linear_decay", "wsd"],
}
ALL = [(kind, name) for kind, names in EXPECTED.items() for name in names]


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_baseline_names_lists_every_bundled_file(kind: str) -> None:
    assert baseline_names(kind) == EXPECTED[kind]


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_every_baseline_passes_the_contract_check_and_loads(kind: str, name: str) -> None:
    source = baseline_source(kind, name)
    assert check_source(source, kind) == []
    candidate = load_baseline(kind, name)
    assert candidate.kind == kind and candidate.name == name and candidate.source == source


@pytest.mark.parametrize(("kind", "name"), ALL)
def test_every_baseline_documents_its_reference_and_rule(kind: str, name: str) -> None:
    docstring = ast.get_docstring(ast.parse(baseline_source(kind, name))) or ""
    assert "Reference" in docstring, f"{kind}/{name} must cite the paper it implements"


@pytest.mark.parametrize("name", EXPECTED["optimizer"])
def test_optimizer_baselines_have_a_positive_lr_default(name: str) -> None:
    assert load_baseline("optimizer", name).hparams["lr"] > 0


def test_adamw_and_lion_defaults_follow_torch_and_the_paper() -> None:
    assert load_baseline("optimizer", "adamw").hparams["weight_decay"] == 0.01
    assert load_baseline("optimizer", "lion").hparams == {
        "lr": 1e-4, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.1,
    }


def test_unknown_baseline_or_kind_raises_a_message_listing_the_choices() -> None:
    with pytest.raises(ValueError, match="adamw"):
        baseline_source("optimizer", "adamx")
    with pytest.raises(ValueError, match="optimizer"):
        baseline_names("optimiser")


# ---- losses ---------------------------------------------------------------------------------------

_logits_and_targets = st.tuples(
    st.integers(1, 16), st.integers(2, 10), st.integers(0, 2**31 - 1)
).map(lambda bcs: _random_batch(*bcs))


def _random_batch(batch: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(batch, classes, generator=gen, dtype=torch.float64)
    return logits, torch.randint(0, classes, (batch,), generator=gen)


def _loss_fn(name: str, source: str | None = None):  # type: ignore[no-untyped-def]
    if source is None:
        return load_baseline("loss", name).fn("loss")
    return load_candidate(source, "loss", name).fn("loss")


@settings(max_examples=30, deadline=None)
@given(_logits_and_targets)
def test_cross_entropy_matches_torch(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, targets = batch
    torch.testing.assert_close(_loss_fn("cross_entropy")(logits, targets), F.cross_entropy(logits, targets))


@settings(max_examples=30, deadline=None)
@given(_logits_and_targets)
def test_label_smoothing_matches_torch_with_epsilon_0_1(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, targets = batch
    expected = F.cross_entropy(logits, targets, label_smoothing=0.1)
    torch.testing.assert_close(_loss_fn("label_smoothing")(logits, targets), expected)


@settings(max_examples=30, deadline=None)
@given(_logits_and_targets)
def test_focal_with_gamma_0_is_cross_entropy(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    source = baseline_source("loss", "focal")
    assert "GAMMA = 2.0" in source
    focal0 = _loss_fn("focal0", source.replace("GAMMA = 2.0", "GAMMA = 0.0"))
    logits, targets = batch
    torch.testing.assert_close(focal0(logits, targets), F.cross_entropy(logits, targets))


@settings(max_examples=30, deadline=None)
@given(_logits_and_targets)
def test_focal_matches_lin_et_al_formula_with_gamma_2(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, targets = batch
    p_t = logits.softmax(-1)[torch.arange(len(targets)), targets]
    expected = (-((1 - p_t) ** 2) * p_t.log()).mean()
    torch.testing.assert_close(_loss_fn("focal")(logits, targets), expected)


@pytest.mark.parametrize("name", EXPECTED["loss"])
def test_losses_are_differentiable_scalars(name: str) -> None:
    logits, targets = _random_batch(8, 5, 0)
    logits.requires_grad_(True)
    value = _loss_fn(name)(logits, targets)
    assert value.dim() == 0
    value.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


# ---- schedules ------------------------------------------------------------------------------------


def _schedule(name: str):  # type: ignore[no-untyped-def]
    return load_baseline("schedule", name).fn("schedule")


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(EXPECTED["schedule"]), st.integers(1, 5000), st.data())
def test_schedules_stay_in_0_1_for_every_step_including_the_one_past_the_end(
    name: str, total: int, data: st.DataObject
) -> None:
    step = data.draw(st.integers(0, total))  # LambdaLR evaluates step == total after the last update
    value = _schedule(name)(step, total)
    assert isinstance(value, float) and 0.0 <= value <= 1.0


def test_constant_is_one_everywhere() -> None:
    fn = _schedule("constant")
    assert {fn(s, 100) for s in range(101)} == {1.0}


def test_cosine_warmup_starts_near_zero_peaks_at_one_and_ends_near_zero() -> None:
    total = 1000
    fn = _schedule("cosine_warmup")
    values = [fn(s, total) for s in range(total)]
    warmup = 50  # 5% of 1000
    assert values[0] == pytest.approx(1 / warmup)
    assert values[warmup - 1] == 1.0 and values[warmup] == 1.0 and max(values) == 1.0
    assert values[-1] < 1e-5
    assert all(a < b for a, b in zip(values[: warmup - 1], values[1:warmup], strict=True))  # rising warm-up
    assert all(a >= b for a, b in zip(values[warmup:-1], values[warmup + 1 :], strict=True))  # falling cosine
    midpoint = warmup + (total - warmup) // 2
    assert values[midpoint] == pytest.approx(0.5, abs=1e-2)


def test_linear_decay_values_at_known_steps() -> None:
    fn = _schedule("linear_decay")
    assert [fn(s, 100) for s in (0, 25, 50, 99, 100)] == pytest.approx([1.0, 0.75, 0.5, 0.01, 0.0])


def test_wsd_warms_up_holds_then_decays_over_the_last_fifth() -> None:
    fn = _schedule("wsd")
    steps = [0, 4, 5, 50, 80, 90, 99, 100]
    expected = [0.2, 1.0, 1.0, 1.0, 1.0, 0.5, 0.05, 0.0]
    assert [fn(s, 100) for s in steps] == pytest.approx(expected)


def test_schedules_handle_a_one_step_run() -> None:
    for name in EXPECTED["schedule"]:
        assert math.isfinite(_schedule(name)(0, 1))
