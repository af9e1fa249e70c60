"""Finding held-out data wherever a sandbox could read it: by content and by place in a Python install.

The trusted side names the held-out *sources* (`hidden_paths`: files or directories on the host, such
as the running interpreter's `pydoc_data` and scikit-learn's `datasets/data`). Masking those paths
alone is not enough: the same text ships with every Python install (the system's
`/usr/lib/python3.X/pydoc_data/topics.py`, pyenv's, conda's, a Docker image's) and a copy can sit
anywhere. So the runners derive a `Fingerprint` from the hidden paths:

* the content of every file under them of at least MIN_BYTES (size and sha256): a copy of one of
  those files is found wherever it lies and under whatever name;
* each hidden path's place inside its Python install (its path relative to the host's stdlib or
  site-packages, e.g. ``pydoc_data`` or ``sklearn/datasets/data``): the same place in *any* install is
  held-out data too, whatever version (and so content) it has.

Zip archives (a wheel of scikit-learn in a package index or a wheelhouse) are looked into: one with
a member at such a place or with such content is masked as a whole.

`find_copies` walks every file a sandbox can see (the runner gives it the sandbox's whole view, an
allow-list) and returns what to mask. The process backend walks its bind-mount sources on the host;
the Docker backend runs this very file inside a throwaway container of the image (`python -c`, so it
must only use the standard library) and walks the host directories it mounts on the host.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import sysconfig
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Files smaller than this are not fingerprinted: they hold no meaningful data (pydoc_data's empty
# __init__.py, sklearn's 79-byte one) and their content is shared by thousands of unrelated files.
MIN_BYTES = 128
# Kernel pseudo file systems: not files on disk, never walked.
PSEUDO_FS = ("/proc", "/sys", "/dev")
# sysconfig path names of a Python install's library directories.
LIBRARY_KEYS = ("stdlib", "platstdlib", "purelib", "platlib")
_CHUNK = 1 << 20
# Zip archives (wheels, eggs, zipapps): their members are read through zipfile, as a candidate would.
ARCHIVES = (".whl", ".zip", ".egg", ".pyz", ".jar")


@dataclass(frozen=True)
class Fingerprint:
    """What held-out data looks like: file contents (size, sha256) and places in a Python install."""

    contents: frozenset[tuple[int, str]] = frozenset()
    tails: frozenset[tuple[str, ...]] = frozenset()  # e.g. ("pydoc_data",), ("sklearn", "datasets", "data")

    def to_json(self) -> str:
        return json.dumps({"contents": sorted([size, digest] for size, digest in self.contents),
                           "tails": sorted(list(tail) for tail in self.tails)})

    @classmethod
    def from_json(cls, text: str) -> Fingerprint:
        data = json.loads(text)
        return cls(frozenset((int(size), str(digest)) for size, digest in data["contents"]),
                   frozenset(tuple(str(part) for part in tail) for tail in data["tails"]))

    def __bool__(self) -> bool:
        return bool(self.contents or self.tails)


@dataclass(frozen=True)
class Found:
    """Paths to mask: directories (covered by an empty tmpfs) and files (covered by /dev/null)."""

    dirs: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    def __add__(self, other: Found) -> Found:
        return Found(tuple(dict.fromkeys([*self.dirs, *other.dirs])),
                     tuple(dict.fromkeys([*self.files, *other.files])))


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _library_roots() -> list[str]:
    paths = sysconfig.get_paths()
    return sorted({os.path.realpath(paths[key]) for key in LIBRARY_KEYS if key in paths},
                  key=len, reverse=True)


def install_tail(path: str | Path) -> tuple[str, ...] | None:
    """`path`'s place inside this interpreter's stdlib or site-packages (the deepest that holds it),
    or None when it is in neither."""
    resolved = os.path.realpath(path)
    for root in _library_roots():
        if resolved.startswith(root + os.sep):
            return tuple(Path(resolved[len(root) + 1:]).parts)
    return None


def fingerprint(hidden_paths: Iterable[str | Path]) -> Fingerprint:
    """The fingerprint of the held-out sources `hidden_paths` (files or directories on this host)."""
    contents: set[tuple[int, str]] = set()
    tails: set[tuple[str, ...]] = set()
    for hidden in hidden_paths:
        tail = install_tail(hidden)
        if tail:
            tails.add(tail)
        for path in _regular_files(os.path.realpath(hidden)):
            with _suppress_os_error():
                size = os.stat(path).st_size
                if size >= MIN_BYTES:
                    contents.add((size, sha256_file(path)))
    return Fingerprint(frozenset(contents), frozenset(tails))


def _regular_files(path: str) -> Iterable[str]:
    if os.path.isfile(path):
        yield path
        return
    for directory, _, files in os.walk(path):
        for name in files:
            full = os.path.join(directory, name)
            if os.path.isfile(full) and not os.path.islink(full):
                yield full


class _suppress_os_error:
    """contextlib.suppress(OSError), without the import (this file also runs as a `-c` script)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, value: object, traceback: object) -> bool:
        return isinstance(value, OSError)


def _matches_tail(path: str, tails: frozenset[tuple[str, ...]]) -> bool:
    parts = path.split(os.sep)
    return any(len(parts) > len(tail) and tuple(parts[-len(tail):]) == tail for tail in tails)


def find_copies(roots: Sequence[str], fp: Fingerprint, prune: Sequence[str] = PSEUDO_FS) -> Found:
    """Every directory or file under `roots` that is held-out data by `fp`: at one of its tails (in any
    install), or with the content of one of its files. Symbolic links are not followed (a link to a
    masked file reads the mask; a link to something outside the roots dangles in the sandbox), but
    a link at a held-out place has its target masked.
    Directories in `prune` (and what lies below them) are skipped, unless they are roots."""
    if not fp:
        return Found()
    sizes = {size for size, _ in fp.contents}
    last = {tail[-1] for tail in fp.tails}  # cheap pre-check before comparing whole tails
    pruned = {os.path.abspath(p) for p in prune}
    dirs: list[str] = []
    files: list[str] = []
    walked = outermost(roots)
    for root in walked:
        if _matches_tail(root, fp.tails):
            dirs.append(root)
            continue
        todo = [root]
        while todo:
            try:
                entries = list(os.scandir(todo.pop()))
            except OSError:  # unreadable here, so unreadable in the sandbox too
                continue
            for entry in entries:
                with _suppress_os_error():
                    if entry.is_symlink():
                        # A link at a held-out place: what it points to is held-out data, if the
                        # sandbox sees it (else the link dangles there).
                        target = os.path.realpath(entry.path)
                        if (entry.name in last and _matches_tail(entry.path, fp.tails)
                                and any(_is_under(target, r) for r in walked)):
                            (dirs if os.path.isdir(target) else files).append(target)
                    elif entry.is_dir(follow_symlinks=False):
                        if entry.name in last and _matches_tail(entry.path, fp.tails):
                            dirs.append(entry.path)
                        elif entry.path not in pruned:
                            todo.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        if entry.name in last and _matches_tail(entry.path, fp.tails):
                            files.append(entry.path)
                            continue
                        size = entry.stat(follow_symlinks=False).st_size
                        copy = size in sizes and (size, sha256_file(entry.path)) in fp.contents
                        if copy or (entry.name.endswith(ARCHIVES)
                                    and _archive_holds(entry.path, fp, sizes)):
                            files.append(entry.path)
    return Found(tuple(sorted(set(dirs))), tuple(sorted(set(files))))


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _archive_holds(path: str, fp: Fingerprint, sizes: set[int]) -> bool:
    """Whether the zip archive at `path` (a wheel: a package index or a wheelhouse) holds held-out
    data: a member at one of fp's tails, or with the content of a held-out file."""
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                name = "/" + member.filename.rstrip("/")
                if _matches_tail(name, fp.tails) or any(_matches_tail(parent, fp.tails)
                                                        for parent in _parents(name)):
                    return True
                if member.file_size in sizes:
                    digest = hashlib.sha256(archive.read(member)).hexdigest()
                    if (member.file_size, digest) in fp.contents:
                        return True
    except (OSError, ValueError, zipfile.BadZipFile, NotImplementedError, RuntimeError):
        return False  # not an archive Python can read: not one a candidate reads through zipfile
    return False


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:depth]) for depth in range(2, len(parts))]


@functools.lru_cache(maxsize=16)
def find_copies_cached(roots: tuple[str, ...], fp: Fingerprint, prune: tuple[str, ...]) -> Found:
    """find_copies, once per process for a view: the roots it is used for (the operating system, the
    interpreter and its packages) do not change while optforge runs."""
    return find_copies(roots, fp, prune)


def outermost(roots: Sequence[str]) -> list[str]:
    """`roots` without duplicates and without those inside another root."""
    kept: list[str] = []
    for root in sorted({os.path.abspath(r) for r in roots}, key=len):
        if os.path.isdir(root) and not any(_is_under(root, k) for k in kept):
            kept.append(root)
    return kept


def main(argv: Sequence[str]) -> int:
    """The Docker probe: `python -c <this file> FINGERPRINT_JSON PATHS_JSON` inside the image prints
    {"dirs": [...], "files": [...]}: the image's copies of held-out data (its whole file system), and
    which of PATHS (held-out paths outside any Python install) exist in it."""
    fp = Fingerprint.from_json(argv[0])
    found = find_copies(["/"], fp, PSEUDO_FS)
    dirs, files = list(found.dirs), list(found.files)
    for path in json.loads(argv[1]) if len(argv) > 1 else []:
        if os.path.isdir(path) and not os.path.islink(path):
            dirs.append(path)
        elif os.path.lexists(path):
            files.append(path)
    print(json.dumps({"dirs": dirs, "files": files}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
