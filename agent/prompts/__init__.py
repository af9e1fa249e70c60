"""Prompt text, and only prompt text: one template per .txt file, filled by agent/proposers/prompting.py.

Templates use `$name` placeholders (string.Template) rather than str.format, so the braces of code
and JSON in the text need no escaping; write `$$` for a literal dollar sign. Per kind there is a
system prompt (`<kind>_system.txt`) and a user template (`<kind>_user.txt`); the other files are
shared fragments (history entries, parents, per-task feedback, reply formats, repair requests).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template


@cache
def template(name: str) -> Template:
    path = resources.files(__name__) / f"{name}.txt"
    if not path.is_file():
        raise ValueError(f"no prompt template {name!r}: expected agent/prompts/{name}.txt")
    return Template(path.read_text(encoding="utf-8"))


def render(template_name: str, /, **values: object) -> str:
    """Template `template_name` filled with `values` (every placeholder must be given), without
    the file's final newline, so fragments compose without stray blank lines."""
    text = template(template_name).substitute({key: str(value) for key, value in values.items()})
    return text[:-1] if text.endswith("\n") else text
