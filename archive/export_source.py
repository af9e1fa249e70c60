"""Copy chosen top-level definitions of some modules, verbatim, into one self-contained text.

An exported file must run the very code that scored its candidate, without optforge installed
(DESIGN.md: "the same adapter is used by the proxy tasks and by exported files"). So the export
does not re-implement the adapter: `emit_definitions` takes the adapter modules' source text (text,
so this package imports nothing of optforge.tasks) and the names the export calls, and returns
those definitions and everything they reference at module level, transitively, exactly as written,
with the imports they need. Relative imports between the given modules are dropped: the names they
brought in are emitted from the module that defines them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass
class _Definition:
    module: int  # index of the module that defines it, for ordering
    start: int  # first line (0-based), decorators and the comment block above included
    stop: int  # one past the last line
    text: str
    references: set[str]


@dataclass
class _Index:
    definitions: dict[str, _Definition] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)  # bound name -> import statement
    relative: set[str] = field(default_factory=set)  # names brought in by relative imports


@dataclass(frozen=True)
class Emitted:
    imports: str  # the import lines the definitions need (never `from __future__`)
    definitions: str  # the definitions, each module's under a `# ---- from <label>` line


def emit_definitions(modules: Sequence[tuple[str, str]], roots: Iterable[str]) -> Emitted:
    """The definitions `roots` need from `modules` ((label, source) pairs, dependencies first).

    Definitions keep their modules' order and text; imports come stdlib first, then torch.
    Raises ValueError when a root is not defined or two modules define the same name.
    """
    index = _index(modules)
    needed = _closure(index, roots)
    imports = {statement for name, statement in index.imports.items() if name in needed}
    chosen = sorted(
        (d for name, d in index.definitions.items() if name in needed),
        key=lambda d: (d.module, d.start),
    )
    parts = []
    for number, (label, _) in enumerate(modules):
        texts = [d.text for d in chosen if d.module == number]
        if texts:
            parts.append(f"# ---- from {label}, verbatim " + "-" * max(0, 70 - len(label)))
            parts.extend(texts)
    return Emitted("\n".join(sorted(imports, key=_import_order)), "\n\n\n".join(parts))


def _import_order(statement: str) -> tuple[bool, bool, str]:
    words = statement.split()
    return (words[1].split(".")[0] == "torch", words[0] == "from", statement)


def _closure(index: _Index, roots: Iterable[str]) -> set[str]:
    todo = list(roots)
    missing = [name for name in todo if name not in index.definitions]
    if missing:
        raise ValueError(f"cannot emit {', '.join(missing)}: not defined in the given modules")
    needed: set[str] = set()
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        definition = index.definitions.get(name)
        if definition is not None:
            todo.extend(definition.references - needed)
    unresolved = sorted((needed & index.relative) - index.definitions.keys())
    if unresolved:
        raise ValueError(
            f"{', '.join(unresolved)} come(s) from a relative import of a module that was not "
            "given: pass that module's source too"
        )
    # Names that are neither defined nor imported are locals or builtins: nothing to emit.
    return needed


def _index(modules: Sequence[tuple[str, str]]) -> _Index:
    index = _Index()
    for number, (label, source) in enumerate(modules):
        lines = source.splitlines()
        for node in ast.parse(source).body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                _add_imports(index, node, label)
                continue
            for name in _defined_names(node):
                if name.startswith("__"):
                    continue  # __all__ and the like describe their own module only
                if name in index.definitions:
                    raise ValueError(
                        f"{name!r} is defined in two of the modules (again in {label})"
                    )
                index.definitions[name] = _definition(number, node, lines)
    return index


def _add_imports(index: _Index, node: ast.Import | ast.ImportFrom, label: str) -> None:
    if isinstance(node, ast.ImportFrom) and node.level:
        index.relative.update(alias.asname or alias.name for alias in node.names)
        return  # the names come from the other given modules
    if isinstance(node, ast.ImportFrom) and node.module == "__future__":
        return  # a compiler directive, not a dependency: the caller decides the file's own
    for alias in node.names:
        if isinstance(node, ast.Import):
            bound = alias.asname or alias.name.split(".")[0]
            statement = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
        else:
            bound = alias.asname or alias.name
            statement = f"from {node.module} import {alias.name}" + (
                f" as {alias.asname}" if alias.asname else ""
            )
        if index.imports.get(bound, statement) != statement:
            raise ValueError(f"{label} imports {bound!r} differently from an earlier module")
        index.imports[bound] = statement


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []  # docstrings, asserts, ...: not definitions anything can need


def _definition(number: int, node: ast.stmt, lines: list[str]) -> _Definition:
    decorators = getattr(node, "decorator_list", [])
    start = min([node.lineno, *(d.lineno for d in decorators)]) - 1
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1  # the comment that explains a definition travels with it
    stop = node.end_lineno or node.lineno
    references = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return _Definition(number, start, stop, "\n".join(lines[start:stop]), references)
