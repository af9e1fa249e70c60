"""Parse a model's reply into code (or SEARCH/REPLACE edits), robustly, and apply edits.

What models actually send, in the order we look for it:
1. a JSON object {"thought", "name", "code" | "diff"}, bare, inside ```json fences or after some
   prose; raw newlines inside strings and trailing commas are tolerated;
2. SEARCH/REPLACE blocks anywhere in the text (diff mode; aider's format);
3. a fenced ```python block (the longest one), with the prose around it as the thought;
4. a reply cut off by the token limit (a JSON "code" string or a ```python block that never
   closes): its complete top-level statements, marked `cut_off`, when they parse. Small local
   models often write a good module and then keep going until max_tokens (seen with
   SmolLM2-135M behind `transformers serve`); the contract check decides whether what was kept is
   a candidate.
When nothing can be kept from a cut-off reply, that gets its own error, since the repair is "be
shorter", not "fix the format". Every error is one line that the proposer can send back to the
model.
"""

from __future__ import annotations

import ast
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
_OPEN_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n")
_CODE_KEY = re.compile(r'"code"\s*:\s*"')
# Lines that cannot start a top-level statement: indented, blank, comments, closing brackets.
_NOT_A_STATEMENT_START = (" ", "\t", "#", ")", "]", "}")
_CLOSER = re.compile(r"\s*[}\]]")
_SEARCH = re.compile(r"^<{5,9} ?SEARCH\s*$")
_DIVIDER = re.compile(r"^={5,9}\s*$")
_REPLACE = re.compile(r"^>{5,9} ?REPLACE\s*$")


# Said before the contract's errors when the code came from a reply cut off by the token limit: the
# repair is "be shorter" as much as "fix the contract".
CUT_OFF_NOTE = (
    "the reply was cut off (it probably hit the token limit) and its complete statements do not "
    "meet the contract; reply again with a shorter module"
)


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
    cut_off: bool = False  # `code` is what was complete in a reply cut off by the token limit


def parse_reply(text: str) -> ParsedReply:
    """The code or edits in `text`; raises ReplyError saying what was wrong."""
    obj, truncated = _find_object(text)
    if obj is not None:
        parsed = _from_object(obj)
        if parsed.code is not None and not _parses(parsed.code):
            # Small models echo the reply format's own example object ("code": "the complete
            # Python module, ...") after writing their module in a ```python block: the block is
            # the reply, when it is Python.
            fenced = _longest_code_fence(text)
            if fenced is not None and _parses(fenced):
                return ParsedReply(code=fenced, thought=_prose(text))
        return parsed
    if _has_blocks(text):
        return ParsedReply(diff=text, thought=_prose(text))
    code = _longest_code_fence(text)
    if code is not None:
        return ParsedReply(code=code, thought=_prose(text))
    kept = _kept_from_json(text) if truncated else _complete_statements(_unclosed_fence(text))
    if kept is not None:
        before = text[: text.rfind("```")] if not truncated else text[: text.find("{")]
        return ParsedReply(code=kept, thought=_prose(before), cut_off=True)
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


def _unclosed_fence(text: str) -> str | None:
    """The body of a ```python (or unlabelled) block that the reply opened and never closed."""
    if text.count("```") % 2 == 0:
        return None
    opening = _OPEN_FENCE.match(text, text.rfind("```"))
    if opening is None or opening.group(1).lower() not in ("python", "py", ""):
        return None
    return text[opening.end() :]


def _kept_from_json(text: str) -> str | None:
    """What can be kept of the "code" string of a JSON object that never closes: all of it when the
    string itself closed (the object was cut off later), else its complete statements."""
    found = _unclosed_json_code(text)
    if found is None:
        return None
    code, closed = found
    if closed and _parses(code):
        return code.strip("\n") + "\n"
    return _complete_statements(code)


def _unclosed_json_code(text: str) -> tuple[str, bool] | None:
    """The "code" string of a JSON object that never closes, decoded as far as it goes, and
    whether the string itself closed."""
    key = _CODE_KEY.search(text)
    if key is None:
        return None
    raw: list[str] = []
    escaped, closed = False, False
    for ch in text[key.end() :]:
        if ch == '"' and not escaped:
            closed = True
            break
        escaped = ch == "\\" and not escaped
        raw.append(ch)
    body = "".join(raw)
    body = re.sub(r"\\(u[0-9a-fA-F]{0,3})?$", "", body)  # an escape cut in half
    try:
        decoded = json.loads(f'"{body}"', strict=False)
    except json.JSONDecodeError:
        return None
    return (_unfence(decoded), closed) if isinstance(decoded, str) else None


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _complete_statements(code: str | None) -> str | None:
    """`code` minus the top-level statement it was cut off in: the longest prefix that ends where a
    top-level statement begins and parses. None when nothing is left."""
    if not code:
        return None
    lines = code.split("\n")
    starts = [i for i, line in enumerate(lines) if line and not line.startswith(_NOT_A_STATEMENT_START)]
    for cut in reversed(starts):
        kept = "\n".join(lines[:cut]).strip("\n")
        if not kept.strip():
            return None
        if _parses(kept):
            return kept + "\n"
    return None


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
