"""The archive's export text: verbatim definitions with what they need, and a candidate embedded
byte for byte whatever characters its source holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optforge.archive import CandidateRecord
from optforge.archive.export import ExportIntegrityError, PublicObject, read_export, render_export
from optforge.archive.export_source import Emitted, emit_definitions

BASE = '''"""base."""
from __future__ import annotations
import math
import os
from typing import Any

# Why the limit is 3.
LIMIT = 3


def helper(x: Any) -> float:
    return math.sqrt(x) * LIMIT


def unused() -> str:
    return os.sep
'''

USER = """from __future__ import annotations
import math
from .base import helper


class Thing:
    @staticmethod
    def value() -> float:
        return helper(4) + math.pi

__all__ = ["Thing"]
"""


def test_emit_copies_what_the_roots_need_transitively_and_verbatim():
    emitted = emit_definitions([("pkg.base", BASE), ("pkg.user", USER)], ["Thing"])
    assert emitted.imports.splitlines() == ["import math", "from typing import Any"]
    assert "# Why the limit is 3.\nLIMIT = 3" in emitted.definitions
    assert "    @staticmethod\n    def value() -> float:" in emitted.definitions
    assert "unused" not in emitted.definitions and "from .base" not in emitted.definitions
    assert emitted.definitions.index("from pkg.base") < emitted.definitions.index("from pkg.user")
    namespace: dict = {}
    exec(emitted.imports + "\n" + emitted.definitions, namespace)
    assert namespace["Thing"].value() == pytest.approx(6 + 3.141592653589793)


def test_emit_refuses_unknown_roots_and_names_defined_twice():
    with pytest.raises(ValueError, match="cannot emit Nope"):
        emit_definitions([("pkg.base", BASE)], ["Nope"])
    with pytest.raises(
        ValueError, match=r"'LIMIT' is defined in two of the modules \(again in b\)"
    ):
        emit_definitions([("a", BASE), ("b", BASE)], ["helper"])


def test_emit_refuses_a_name_from_a_module_it_was_not_given():
    with pytest.raises(
        ValueError, match="helper come.s. from a relative import .* pass that module"
    ):
        emit_definitions([("pkg.user", USER)], ["Thing"])


def _render(source: str, name: str = 'odd name """ \\ with\nnewline and \x00') -> str:
    record = CandidateRecord.new(source, "optimizer", name)
    runtime = Emitted("import math", "def load_candidate(*a):\n    return a")
    when = datetime(2026, 1, 1, tzinfo=UTC)
    public = PublicObject("THING = CANDIDATE", ("from m import THING",))
    return render_export(
        record, [], campaign="/runs/x", runtime=runtime, exported_at=when, public=public
    )


@settings(max_examples=60, deadline=None)
@given(st.text(), st.text())
def test_any_source_and_name_give_a_valid_module_that_reads_back(source: str, name: str):
    text = _render(source, name)
    compile(text, "export.py", "exec")  # the module stays valid Python, docstring included
    assert read_export(text, "export.py").source == source


@pytest.mark.parametrize(
    "source",
    ["x = '''a'''\n", "x = \"\"\"a\"\"\"\ny = '''b'''\n", "x = 1  \\\n", "a\rb", "s = r'\\'\n"],
)
def test_awkward_quotes_and_backslashes_embed_exactly(source: str):
    assert read_export(_render(source), "export.py").source == source


def test_reading_refuses_files_that_are_not_exports():
    with pytest.raises(ExportIntegrityError, match="not a file written by `optforge export`"):
        read_export("def f(:\n", "broken.py")
    with pytest.raises(ExportIntegrityError, match="no PROVENANCE or CANDIDATE_SOURCE"):
        read_export("x = 1\n", "plain.py")
