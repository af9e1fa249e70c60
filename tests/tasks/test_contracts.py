"""The static contract check: each violation is one actionable line; valid candidates pass."""

import pytest

from optforge.tasks.baselines import baseline_names, baseline_source
from optforge.tasks.contracts import (
    ContractError,
    check_source,
    declared_hparams,
    infer_kind,
    load_candidate,
)

GOOD_OPTIMIZER = """
import torch
HPARAMS = {"lr": 0.01}
def init(param):
    return {}
def update(grad, param, state, step, hp):
    return -hp["lr"] * grad, state
"""


def test_valid_optimizer_passes_and_loads():
    assert check_source(GOOD_OPTIMIZER, "optimizer") == []
    candidate = load_candidate(GOOD_OPTIMIZER, "optimizer")
    assert candidate.hparams == {"lr": 0.01}
    assert candidate.id == load_candidate(GOOD_OPTIMIZER, "optimizer").id


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        (GOOD_OPTIMIZER.replace("import torch", "import os"), "import of 'os' is not allowed"),
        (GOOD_OPTIMIZER.replace("import torch", "from subprocess import run"), "import of 'subprocess'"),
        (GOOD_OPTIMIZER.replace("import torch", "import ctypes"), "import of 'ctypes'"),
        (GOOD_OPTIMIZER.replace("return {}", "return open('/etc/passwd')"), "'open' is not allowed"),
        (GOOD_OPTIMIZER.replace("return {}", "return grad.__class__"), "dunder attribute '__class__'"),
        (GOOD_OPTIMIZER.replace("return {}", "return eval('1')"), "'eval' is not allowed"),
        (GOOD_OPTIMIZER.replace("def init(param)", "def init(param, extra)"), "'init' must take 1"),
        (GOOD_OPTIMIZER.replace("def update", "def updat"), "missing required function 'update'"),
        (GOOD_OPTIMIZER.replace('{"lr": 0.01}', '{"beta": 0.9}'), "positive 'lr'"),
        (GOOD_OPTIMIZER.replace('{"lr": 0.01}', '{"lr": float("nan")}'), "literal dict"),
        (GOOD_OPTIMIZER.replace("HPARAMS", "PARAMS"), "missing module-level HPARAMS"),
        (GOOD_OPTIMIZER + "\ndef f(:\n", "syntax error on line"),
        (GOOD_OPTIMIZER + "#" * 30_000, "keep the module under"),
    ],
)
def test_violations_are_one_actionable_line(source, fragment):
    errors = check_source(source, "optimizer")
    assert errors, "the check must reject this source"
    assert any(fragment in e for e in errors), errors
    assert all("\n" not in e for e in errors)


def test_unknown_kind_is_rejected():
    assert check_source(GOOD_OPTIMIZER, "regularizer") == [
        "unknown kind 'regularizer': use one of optimizer, loss, schedule, preference_loss, scaling_rule"
    ]


def test_load_raises_contract_error_with_the_lines():
    with pytest.raises(ContractError) as info:
        load_candidate(GOOD_OPTIMIZER.replace("import torch", "import socket"), "optimizer")
    assert "socket" in info.value.errors[0]


def test_module_that_raises_at_import_is_a_contract_error():
    with pytest.raises(ContractError, match="module failed to load: ZeroDivisionError"):
        load_candidate(GOOD_OPTIMIZER + "\nx = 1 / 0\n", "optimizer")


@pytest.mark.parametrize("kind", ["optimizer", "loss", "schedule"])
def test_every_baseline_kind_is_inferred(kind):
    for name in baseline_names(kind):
        assert infer_kind(baseline_source(kind, name)) == kind


def test_declared_hparams_reads_without_executing():
    source = GOOD_OPTIMIZER + "\nraise SystemExit('executed!')\n"
    assert declared_hparams(source) == {"lr": 0.01}
    assert declared_hparams("HPARAMS = {'lr': -1}") == {}
