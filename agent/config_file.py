"""Campaign config files (TOML): the annotated template `optforge init` writes, loading a file into
a `CampaignConfig` with one-line errors, and dumping a config back to TOML.

Every error is a `ConfigFileError` whose message is one line saying what is wrong and what to do,
so the CLI can print it as it is. The dump (`config_to_toml`) is plain, not annotated: it records
the effective config next to a campaign's archive, and `load_config` reads it back unchanged.
"""

from __future__ import annotations

import math
import pathlib
import re
import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from pydantic import BaseModel, ValidationError

from .config import CampaignConfig

HINT = "(see `optforge init` for an annotated example)"


class ConfigFileError(Exception):
    """A campaign config file could not be written or read; the message is one line."""


# -- the annotated template -------------------------------------------------------------------


def default_config_text() -> str:
    """The annotated default config (every field, with what it does and why its default)."""
    path = resources.files("optforge.agent") / "templates" / "campaign.toml"
    return path.read_text(encoding="utf-8")


def write_default_config(path: pathlib.Path) -> None:
    """Write the annotated template to `path`, creating parent folders; never overwrite."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Exclusive create: no window between an existence check and the write.
        with path.open("x", encoding="utf-8") as f:
            f.write(default_config_text())
    except FileExistsError:
        raise ConfigFileError(f"{path} already exists: choose another name or delete it") from None
    except OSError as e:
        raise ConfigFileError(f"cannot write {path} ({e.strerror}): choose another path") from None


# -- loading ------------------------------------------------------------------------------------


def load_config(path: pathlib.Path) -> CampaignConfig:
    """The campaign config in the TOML file `path`; ConfigFileError (one line) when it is not one."""
    data = _parse_toml(_read_text(path), path)
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(_describe(error) for error in e.errors())
        raise ConfigFileError(_one_line(f"{path}: {problems} {HINT}")) from None


def _read_text(path: pathlib.Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigFileError(
            f"{path}: no such file: check the path, or run `optforge init` to write one"
        ) from None
    except OSError as e:
        raise ConfigFileError(f"{path}: cannot read it ({e.strerror}): check the path") from None
    try:
        # utf-8-sig: some editors start UTF-8 files with a byte-order mark, which TOML forbids.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigFileError(
            f"{path}: not UTF-8 text (bad byte at offset {e.start}): save it as UTF-8"
        ) from None


def _parse_toml(text: str, path: pathlib.Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:  # its message names the line and column
        raise ConfigFileError(_one_line(f"{path}: invalid TOML: {e} {HINT}")) from None


def _describe(error: Mapping[str, Any]) -> str:
    """`dotted.location: message` for one pydantic error."""
    # "[key]" marks a problem with a dict's key rather than its value: the key is already named.
    loc = tuple(str(part) for part in error["loc"] if part != "[key]")
    where = ".".join(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        known = ", ".join(_known_keys(loc[:-1])) or "none"
        return f"{where}: unknown key (known: {known})"
    message = error["msg"]
    if "input" in error and error["type"] != "missing":
        message += f", got {_short(error['input'])}"
    return f"{where}: {message}"


def _known_keys(loc: Sequence[str]) -> list[str]:
    """The field names of the (nested) model at `loc` in CampaignConfig."""
    model: type[BaseModel] = CampaignConfig
    for name in loc:
        field = model.model_fields.get(name)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


# -- dumping --------------------------------------------------------------------------------------


def config_to_toml(config: CampaignConfig) -> str:
    """`config` as plain TOML (None values left out, so they load back as their default None)."""
    lines: list[str] = []
    _emit_table(config.model_dump(exclude_none=True), (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _emit_table(table: Mapping[Any, Any], prefix: tuple[str, ...], lines: list[str]) -> None:
    # TOML puts a table's plain keys before its sub-tables: a key after a [header] would belong to
    # that header's table instead.
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    # A header is needed for a table's own keys, or to say that it exists when it is empty; a table
    # holding only sub-tables is implied by their headers.
    if prefix and (scalars or not tables):
        lines += ["", "[" + ".".join(_key(part) for part in prefix) + "]"]
    lines += [f"{_key(k)} = {_value(v)}" for k, v in scalars.items()]
    for k, v in tables.items():
        _emit_table(v, (*prefix, str(k)), lines)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(key: object) -> str:
    text = str(key)
    return text if _BARE_KEY.fullmatch(text) else _string(text)


def _value(value: object) -> str:
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # repr round-trips exactly and is valid TOML ("1e-05", "inf", "nan"); TOML has no "-nan".
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write a {type(value).__name__} to TOML: {value!r}")


# TOML basic strings must escape '"', '\\' and control characters other than tab (U+007F too).
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _string(text: str) -> str:
    def escape(char: str) -> str:
        if char in _ESCAPES:
            return _ESCAPES[char]
        if char != "\t" and (ord(char) < 0x20 or ord(char) == 0x7F):
            return f"\\u{ord(char):04x}"
        return char

    return '"' + "".join(escape(c) for c in text) + '"'
