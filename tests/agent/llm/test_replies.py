"""Parsing model replies and applying SEARCH/REPLACE edits."""

from __future__ import annotations

import ast
import contextlib
import json
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optforge.agent.proposers.replies import (
    DiffError,
    ReplyError,
    apply_diff,
    clean_name,
    parse_reply,
)
from optforge.tasks.contracts import check_source

from .samples import GOOD_SOURCE, PARENT_SOURCE, json_reply

REPLY = {"thought": "Use tanh.", "name": "Tanh Momentum!", "code": GOOD_SOURCE}


def test_bare_json_object():
    parsed = parse_reply(json.dumps(REPLY))
    assert (parsed.code, parsed.name, parsed.thought) == (GOOD_SOURCE, "tanh_momentum", "Use tanh.")


def test_json_in_fences_after_prose():
    text = f"Sure! My idea:\n\n```json\n{json.dumps(REPLY, indent=2)}\n```\nHope it helps."
    assert parse_reply(text).code == GOOD_SOURCE


def test_trailing_commas_are_tolerated():
    text = '{"thought": "t", "name": "n", "code": "x = [1, 2,]\\n",}'
    assert parse_reply(text).code == "x = [1, 2,]\n"  # the comma inside the string stays


def test_raw_newlines_inside_the_code_string_are_tolerated():
    text = '{"name": "n", "code": "import torch\n\ndef loss(logits, targets):\n    return logits.sum()\n"}'
    assert parse_reply(text).code.startswith("import torch\n\ndef loss(")


def test_code_string_wrapped_in_its_own_fence_is_unwrapped():
    text = json.dumps({"code": f"```python\n{GOOD_SOURCE}```"})
    assert parse_reply(text).code == GOOD_SOURCE


def test_dict_literals_before_the_reply_object_are_skipped():
    text = 'I keep HPARAMS = {"lr": 1e-3} as before.\n' + json.dumps(REPLY)
    assert parse_reply(text).code == GOOD_SOURCE


def test_fenced_python_block_when_there_is_no_json():
    text = f"Idea: tanh instead of sign.\n\n```python\n{GOOD_SOURCE}```\n\nand a note\n```python\nx = 1\n```"
    parsed = parse_reply(text)
    assert parsed.code == GOOD_SOURCE  # the longest block
    assert parsed.thought == "Idea: tanh instead of sign. and a note"
    assert parsed.name is None


def test_truncated_json_with_nothing_complete_is_a_clear_error():
    text = json.dumps(REPLY)
    cut = text[: text.index('"code": "') + 14]  # inside the module's first statement
    with pytest.raises(ReplyError, match="cut off: its JSON object never closes"):
        parse_reply(cut)


def test_truncated_code_fence_keeps_what_was_complete():
    parsed = parse_reply(f"```python\n{GOOD_SOURCE[:80]}")
    # it was cut off in `def init`: the statements before it are kept, the prose is what came first
    assert parsed.cut_off and parsed.code == 'import torch\n\nHPARAMS = {"lr": 0.0003, "beta": 0.9}\n'
    assert parsed.thought is None


def test_json_without_code_says_what_is_missing():
    with pytest.raises(ReplyError, match='without a "code" string'):
        parse_reply('{"thought": "I forgot the code", "name": "oops"}')


def test_prose_only_says_what_to_send():
    with pytest.raises(ReplyError, match="found neither a JSON object"):
        parse_reply("I think momentum would help here.")


def test_diff_in_json_and_bare_blocks_are_both_found():
    blocks = "<<<<<<< SEARCH\nold\n=======\nnew\n>>>>>>> REPLACE"
    assert parse_reply(json.dumps({"name": "d", "diff": blocks})).diff == blocks
    bare = f"I change one line:\n{blocks}\n"
    assert parse_reply(bare).diff == bare


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Tanh Momentum!", "tanh_momentum"),
        ("  __x__ ", "x"),
        ("", None),
        (None, None),
        (3, None),
        ("a" * 80, "a" * 48),
    ],
)
def test_names_become_short_snake_case(raw, clean):
    assert clean_name(raw) == clean


def _block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def test_diff_blocks_apply_in_order():
    diff = _block(
        'HPARAMS = {"lr": 0.0003, "beta": 0.9}', 'HPARAMS = {"lr": 0.001, "beta": 0.95}'
    ) + _block("torch.sign(m)", "torch.tanh(m)")
    result = apply_diff(PARENT_SOURCE, diff)
    assert '"beta": 0.95' in result and "torch.tanh(m)" in result and "sign" not in result


def test_diff_tolerates_trailing_whitespace_differences():
    search = '    m = hp["beta"] * state["m"] + (1 - hp["beta"]) * grad   '
    result = apply_diff(PARENT_SOURCE, _block(search, "    m = grad"))
    assert "    m = grad\n" in result


def test_diff_that_does_not_match_names_the_block():
    with pytest.raises(DiffError, match="block 1: the SEARCH text does not occur .*'return grad'"):
        apply_diff(PARENT_SOURCE, _block("return grad", "return -grad"))


def test_ambiguous_search_asks_for_more_context():
    with pytest.raises(DiffError, match="occurs 2 times"):
        apply_diff(PARENT_SOURCE, _block('hp["beta"]', "0.9"))


def test_unclosed_block_is_an_error():
    with pytest.raises(DiffError, match="not closed"):
        apply_diff(PARENT_SOURCE, "<<<<<<< SEARCH\ntorch.sign(m)\n=======\ntorch.tanh(m)\n")


# Prose as models write it around a reply: no braces, fences or diff markers.
prose = st.text(
    st.characters(blacklist_characters='{}`<>=\\"', blacklist_categories=("Cs",)), max_size=80
)
code_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=400).filter(
    lambda s: s.strip() and "```" not in s and "<<<<<<<" not in s
)


@settings(max_examples=150, deadline=None)
@given(
    code=code_text,
    name=st.text(max_size=30),
    thought=st.text(max_size=60),
    before=prose,
    after=prose,
    fenced=st.booleans(),
)
def test_any_code_survives_the_json_round_trip(code, name, thought, before, after, fenced):
    body = json.dumps(
        {"thought": thought, "name": name, "code": code}, indent=None if fenced else 2
    )
    text = f"{before}\n```json\n{body}\n```\n{after}" if fenced else f"{before}\n{body}\n{after}"
    parsed = parse_reply(text)
    assert parsed.code == code
    assert parsed.name == clean_name(name)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_parsing_arbitrary_text_fails_only_with_a_reply_error(text):
    with contextlib.suppress(ReplyError):  # anything else (IndexError, ...) fails the test
        parse_reply(text)


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(
        st.text(
            st.characters(blacklist_categories=("Cs", "Zl", "Zp", "Cc")), min_size=1, max_size=20
        ),
        min_size=1,
        max_size=12,
        unique=True,
    ),
    data=st.data(),
)
def test_a_block_replacing_distinct_lines_gives_the_expected_source(lines, data):
    lines = [f"line_{i} = {line!r}" for i, line in enumerate(lines)]  # distinct, no stray markers
    start = data.draw(st.integers(0, len(lines) - 1))
    stop = data.draw(st.integers(start + 1, len(lines)))
    replacement = data.draw(st.lists(st.sampled_from(["x = 1", "y = x * 2", "pass"]), max_size=3))
    source = "".join(f"{line}\n" for line in lines)
    expected = "".join(f"{line}\n" for line in lines[:start] + replacement + lines[stop:])
    assert (
        apply_diff(source, _block("\n".join(lines[start:stop]), "\n".join(replacement))) == expected
    )


# -- replies a real model sent (SmolLM2-135M-Instruct behind `transformers serve`, tests/agent/llm/
# real_replies/, recorded by the llm-marked tests' campaign and by benchmarks/prompt_sizes.py) -----

REAL = pathlib.Path(__file__).parent / "real_replies"


def real(name: str) -> str:
    return (REAL / f"{name}.txt").read_text(encoding="utf-8")


def test_a_real_reply_cut_off_inside_its_fence_keeps_its_complete_statements():
    # 512 tokens of a module that repeats itself until the token limit, with no closing fence.
    parsed = parse_reply(real("smollm2_loss_cut_off_in_a_fence"))
    assert parsed.cut_off
    ast.parse(parsed.code)
    assert parsed.code.startswith("import torch\n\ndef score_above_ref_score(")
    # the statement it was cut off in is gone
    assert "def score_above_ref_score_new_json_new_json_new_json(score_above" not in parsed.code
    # and the contract check, not the parser, is what rejects it
    assert check_source(parsed.code, "loss") == ["missing required function 'loss' taking 2 arguments"]


def test_a_real_reply_with_prose_after_its_fence_gives_the_code():
    parsed = parse_reply(real("smollm2_schedule_fence_then_prose"))
    assert not parsed.cut_off
    assert parsed.code.startswith("import json\n\ndef schedule(step, total_steps):")
    assert parsed.thought.startswith("This is a JSON-based solution")
    assert check_source(parsed.code, "schedule")[0].startswith("line 1: import of 'json'")


def test_a_real_optimizer_reply_cut_off_parses_to_what_was_complete():
    parsed = parse_reply(real("smollm2_optimizer_cut_off_in_a_fence"))
    assert parsed.cut_off and parsed.code.count("def max_score_per_task") >= 3
    ast.parse(parsed.code)


def test_a_json_reply_cut_off_inside_its_code_string_keeps_the_complete_statements():
    code = GOOD_SOURCE + "\n\ndef helper(x):\n    return x * 2\n"
    text = json_reply(code, name="cut")
    cut = text[: text.index("return x * 2")]  # inside the last function, mid-string
    parsed = parse_reply(cut)
    assert parsed.cut_off and parsed.code == GOOD_SOURCE.strip("\n") + "\n"


def test_a_json_reply_cut_off_after_its_code_string_keeps_all_the_code():
    text = json.dumps({"code": GOOD_SOURCE, "thought": "a long thought that is cut"})
    parsed = parse_reply(text[:-12])
    assert parsed.cut_off
    assert parsed.code == GOOD_SOURCE.strip("\n") + "\n"  # the code string closed: all of it


def test_a_cut_off_reply_with_nothing_complete_is_still_the_clear_error():
    with pytest.raises(ReplyError, match="cut off inside a ``` block"):
        parse_reply("```python\ndef loss(logits, targ")


def test_a_real_reply_that_echoes_the_reply_format_after_its_code_gives_the_code():
    # The module in a ```python block, then prose, then the reply format's example object (its
    # "code" is the placeholder sentence) in a second block.
    parsed = parse_reply(real("smollm2_loss_echoes_the_reply_format"))
    assert parsed.code.startswith("import torch\n\ndef cross_entropy_with_gamma(logits, targets):")
    assert check_source(parsed.code, "loss") == ["missing required function 'loss' taking 2 arguments"]


def test_a_json_object_whose_code_is_python_wins_over_a_fence():
    text = f"```python\nx = 1\n```\n{json.dumps(REPLY)}"
    assert parse_reply(text).code == GOOD_SOURCE


def test_a_real_reply_in_several_fences_gives_the_longest_closed_one():
    # Three closed blocks, one function each, then a fourth cut off by the token limit: the longest
    # closed block is taken (the cut-off one is only a fallback).
    parsed = parse_reply(real("smollm2_loss_three_fences"))
    assert parsed.code.startswith("def label_smoothing_with_alpha_balancing(logits, targets):")
    assert not parsed.cut_off
