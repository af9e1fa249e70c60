"""Records: content-hash ids ignore formatting, records normalize to what the store gives back."""

from __future__ import annotations

import math

import pytest

from optforge.archive import (
    CandidateRecord,
    EvaluationRecord,
    EventRecord,
    TaskResult,
    candidate_id,
    config_hash,
    normalize_source,
)

ADAMISH = '''"""A docstring."""
import torch

def update(grad, param, state, step, hp):
    """Inner docstring."""
    m = 0.9 * state["m"] + 0.1 * grad   # momentum
    return -hp["lr"] * m, {"m": m}
'''

REFORMATTED = """import torch
def update( grad,param,state,step,hp ):
    m = (0.9*state['m'] + 0.1*grad)
    return (-hp['lr'] * m, {'m': m})
"""


def test_formatting_comments_and_docstrings_do_not_change_the_id() -> None:
    assert candidate_id(ADAMISH) == candidate_id(REFORMATTED)
    assert len(candidate_id(ADAMISH)) == 64


def test_a_semantic_change_changes_the_id() -> None:
    assert candidate_id(ADAMISH) != candidate_id(ADAMISH.replace("0.9 *", "0.95 *"))


def test_a_function_that_was_only_a_docstring_still_normalizes_to_valid_python() -> None:
    compile(normalize_source('def f():\n    """only a docstring"""\n'), "<n>", "exec")


def test_unparsable_source_falls_back_to_stripped_text_and_stays_stable() -> None:
    broken = "def update(:\n    return  \n"
    assert normalize_source("\n\n" + broken + "\n") == "def update(:\n    return"
    assert candidate_id(broken) == candidate_id(broken + "\n\n")
    assert normalize_source("x = '\0'") is not None  # NUL bytes: ValueError from ast, not a crash


def test_new_computes_the_id_from_the_source() -> None:
    record = CandidateRecord.new(ADAMISH, "optimizer", "momentum", parent_ids=["a"])
    assert record.id == candidate_id(ADAMISH)
    assert record.parent_ids == ("a",)  # lists become tuples: records stay hashable and frozen


def test_evaluation_fields_are_normalized_to_their_json_form() -> None:
    ev = EvaluationRecord(
        "c",
        1,
        "ok",
        score=1.2,
        score_ci=[1.0, 1.4],
        tasks=[{"name": "t", "status": "ok", "metric": "loss", "score_ci": [0.9, 1.1], "gone": 1}],
        learning_rates=[1, 2],
    )
    assert ev.score_ci == (1.0, 1.4)
    # A task's JSON form reads back typed; a key no field holds (an older archive's) is left out.
    assert ev.tasks == (TaskResult("t", "ok", "loss", score_ci=(0.9, 1.1)),)
    assert ev.learning_rates == (1.0, 2.0)
    hash(ev)  # dict-valued fields are left out of the hash


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"tier": 3}, "tier"),
        ({"score": math.nan}, "score"),
        ({"score": math.inf}, "score"),
        ({"score_ci": (math.nan, 1.0)}, "NaN"),
    ],
)
def test_evaluation_rejects_bad_values(fields: dict, message: str) -> None:
    base = {"candidate_id": "c", "tier": 1, "status": "ok"}
    with pytest.raises(ValueError, match=message):
        EvaluationRecord(**{**base, **fields})


def test_values_json_cannot_hold_fail_when_the_record_is_built() -> None:
    with pytest.raises(TypeError, match="event data must be JSON-serializable"):
        EventRecord("start", {"when": object()})
    with pytest.raises(TypeError, match="tasks"):
        EvaluationRecord("c", 1, "ok", tasks=({"x": {1, 2}},))
    with pytest.raises(TypeError, match="tasks: a task needs name, status and metric; this one lacks metric"):
        EvaluationRecord("c", 1, "ok", tasks=({"name": "t", "status": "ok"},))


def test_candidate_rejects_negative_island_or_generation() -> None:
    with pytest.raises(ValueError, match="island"):
        CandidateRecord.new("x = 1", "optimizer", "x", island=-1)


def test_config_hash_ignores_key_order() -> None:
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
