"""Parse a model's reply into code (or SEARCH/REPLACE edits), robustly, and apply edits.

What models actually send, in the order we look for it:
1. a JSON object {"thought", "name", "code" | "diff"}, bare, inside ```json fences or after some
   prose; raw newlines inside strings and trailing commas are tolerated;
2. SEARCH/REPLACE blocks anywhere in the text (diff mode; aider's format);
3. a fenced ```python block (the longest one), with the prose around it as the thought.
A JSON object that never closes means the reply was cut off (usually by max_tokens): that gets its
own error, since the repair is "be shorter", not "fix the format". Every error is one line that the
proposer can send back to the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_NAME_CHARS = 48
MAX_THOUGHT_CHARS = 2000
MAX_UNCLOSED_SCANS = 16

_OBJECT_START = re.compile(r"\{\s*[\"}]")  # JSON objects start with a key or are empty
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.S)
_CLOSER = re.compile(r"\s*[}\]]")
_SEARCH = re.compile(r"^<{5,9} ?SEARCH\s*$")
_DIVIDER = re.compile(r"^={5,9}\s*$")
_REPLACE = re.compile(r"^>{5,9} ?REPLACE\s*$")


class ReplyError(ValueError):
    """The reply cannot be used. The message is one line, fit to send back to the model."""


class DiffError(ReplyError):
    """SEARCH/REPLACE blocks that do not apply to the parent: ask for a full rewrite instead."""


@dataclass(frozen=True)
class ParsedReply:
    code: str | None = None  # the complete module
    diff: str | None = None  # SEARCH/REPLACE blocks against the parent
    name: str | None = None
    thought: str | None = None


def parse_reply(text: str) -> ParsedReply:
    """The code or edits in `text`; raises ReplyError saying what was wrong."""
    obj, truncated = _find_object(text)
    if obj is not None:
        return _from_object(obj)
    if _has_blocks(text):
        return ParsedReply(diff=text, thought=_prose(text))
    code = _longest_code_fence(text)
    if code is not None:
        return ParsedReply(code=code, thought=_prose(text))
    if truncated:
        raise ReplyError(
            "the reply was cut off: its JSON object never closes (it probably hit the token "
            "limit); reply again with a shorter module and a one-sentence thought"
        )
    if text.count("```") % 2 == 1:
        raise ReplyError("the reply was cut off inside a ``` block; reply again, shorter")
    if _OBJECT_START.search(text):
        raise ReplyError(
            'found a JSON object without a "code" string: put the complete module in "code"'
        )
    raise ReplyError(
        'found neither a JSON object with "code" nor a ```python block: reply with one JSON '
        'object {"thought": ..., "name": ..., "code": ...}'
    )


def clean_name(name: Any) -> str | None:
    """A short snake_case identifier from whatever the model called its candidate."""
    if not isinstance(name, str):
        return None
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:MAX_NAME_CHARS].strip("_")
    return slug or None


def _find_object(text: str) -> tuple[dict[str, Any] | None, bool]:
    """The first JSON object in `text` holding "code" or "diff", and whether an object was cut off."""
    unclosed = 0
    for match in _OBJECT_START.finditer(text):
        end = _object_end(text, match.start())
        if end is None:
            # Keep looking (a stray '{"' in prose must not hide a later object), but not forever:
            # each unclosed scan reads to the end of the text.
            unclosed += 1
            if unclosed >= MAX_UNCLOSED_SCANS:
                break
            continue
        obj = _loads(text[match.start() : end])
        if isinstance(obj, dict) and (_is_text(obj.get("code")) or _is_text(obj.get("diff"))):
            return obj, False
    return None, unclosed > 0


def _scan(text: str, start: int = 0) -> Iterator[tuple[int, str, bool]]:
    """(index, char, inside a JSON string) from `start` on; the quotes themselves count as inside."""
    in_string, escaped = False, False
    for i in range(start, len(text)):
        ch = text[i]
        was_inside = in_string
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        yield i, ch, was_inside or in_string


def _object_end(text: str, start: int) -> int | None:
    """Index just past the brace that closes the object opened at `start` (None: never closes)."""
    depth = 0
    for i, ch, inside in _scan(text, start):
        if inside:
            continue
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _loads(candidate: str) -> Any:
    # strict=False: models often put raw newlines and tabs inside the "code" string.
    for attempt in (candidate, _without_trailing_commas(candidate)):
        try:
            return json.loads(attempt, strict=False)
        except json.JSONDecodeError:
            continue
    return None


def _without_trailing_commas(text: str) -> str:
    """`text` minus commas that directly precede a closing brace or bracket, outside strings."""
    out: list[str] = []
    for i, ch, inside in _scan(text):
        if not inside and ch == "," and _CLOSER.match(text, i + 1):
            continue
        out.append(ch)
    return "".join(out)


def _from_object(obj: dict[str, Any]) -> ParsedReply:
    code, diff = obj.get("code"), obj.get("diff")
    thought = obj.get("thought")
    return ParsedReply(
        code=_unfence(code) if isinstance(code, str) and _is_text(code) else None,
        diff=diff if _is_text(diff) and not _is_text(code) else None,
        name=clean_name(obj.get("name")),
        thought=thought.strip()[:MAX_THOUGHT_CHARS] if isinstance(thought, str) else None,
    )


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _unfence(code: str) -> str:
    """Models sometimes wrap the JSON "code" string in ```python fences too."""
    match = _FENCE.fullmatch(code.strip())
    return match.group(2) if match else code


def _longest_code_fence(text: str) -> str | None:
    blocks = [
        body
        for lang, body in _FENCE.findall(text)
        if lang.lower() in ("python", "py", "")
        and body.strip()
        and not body.lstrip().startswith("{")
    ]
    return max(blocks, key=len) if blocks else None


def _prose(text: str) -> str | None:
    """The reply minus its fenced blocks: the model's explanation, used as the thought."""
    prose = " ".join(_FENCE.sub(" ", text).split())
    return prose[:MAX_THOUGHT_CHARS] or None


def _has_blocks(text: str) -> bool:
    return any(_SEARCH.match(line) for line in text.splitlines())


def parse_blocks(diff: str) -> list[tuple[str, str]]:
    """(search, replace) pairs of the SEARCH/REPLACE blocks in `diff`, in order."""
    blocks: list[tuple[str, str]] = []
    search: list[str] | None = None
    replace: list[str] | None = None
    for line in diff.splitlines():
        if _SEARCH.match(line):
            search, replace = [], None
        elif search is not None and replace is None and _DIVIDER.match(line):
            replace = []
        elif replace is not None and search is not None and _REPLACE.match(line):
            blocks.append(("\n".join(search), "\n".join(replace)))
            search, replace = None, None
        elif replace is not None:
            replace.append(line)
        elif search is not None:
            search.append(line)
    if search is not None:
        raise DiffError("a SEARCH/REPLACE block is not closed with '>>>>>>> REPLACE'")
    if not blocks:
        raise DiffError("no SEARCH/REPLACE blocks found")
    return blocks


def apply_diff(parent: str, diff: str) -> str:
    """`parent` with every SEARCH/REPLACE block of `diff` applied in order.

    A SEARCH part must match exactly one place, exactly or up to trailing whitespace per line;
    otherwise DiffError names the block, so the model can be asked for a full rewrite instead.
    """
    source = parent
    for number, (search, replace) in enumerate(parse_blocks(diff), start=1):
        if not search.strip():
            raise DiffError(f"block {number} has an empty SEARCH part")
        source = _replace_once(source, search, replace, number)
    return source


def _replace_once(source: str, search: str, replace: str, number: int) -> str:
    """Replace the one place `search` matches: whole lines exactly, else whole lines up to trailing
    whitespace (models often drop or add trailing spaces), else part of a line."""
    lines = source.split("\n")
    wanted = search.split("\n")
    new = replace.split("\n") if replace else []  # an empty REPLACE deletes the lines
    for normalise in (_same, str.rstrip):
        target = [normalise(line) for line in wanted]
        starts = [
            i
            for i in range(len(lines) - len(wanted) + 1)
            if [normalise(line) for line in lines[i : i + len(wanted)]] == target
        ]
        if len(starts) == 1:
            i = starts[0]
            return "\n".join(lines[:i] + new + lines[i + len(wanted) :])
        if starts:
            raise DiffError(
                f"block {number}: the SEARCH text occurs {len(starts)} times; include more lines "
                "to make it unique"
            )
    count = source.count(search)
    if count == 1:
        return source.replace(search, replace, 1)
    first = next((line.strip() for line in wanted if line.strip()), "")
    where = "does not occur" if count == 0 else f"occurs {count} times"
    raise DiffError(
        f"block {number}: the SEARCH text {where} in the parent's code (it starts with {first!r})"
    )


def _same(line: str) -> str:
    return line
