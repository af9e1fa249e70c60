"""The scaling task's text: the top-level `*.py` files of CPython 3.11.7's standard library.

Every machine with Python has a standard library, but not this version's, so the encoded corpus
ships with optforge (data/, xz-compressed character ids, ~1 MB) and `python -m
optforge.tasks.scaling.corpus` rebuilds it from a 3.11.7 install, checking the pinned sha256 of the
files' concatenated bytes (in sorted name order).

Vocabulary: newline and the 95 printable ASCII characters (96 symbols); the 38 other characters in
the corpus (box-drawing, accented letters in comments) become "?". The last nine files in name order
(uuid.py .. zipimport.py, 5.4% of the text) are held out: the trusted side draws the evaluation
windows from them, and their encoded file is among those the sandbox hides. (The same text is in
every Python install as source; the training jobs run no candidate code, see train.py.)
"""

from __future__ import annotations

import functools
import hashlib
import lzma
import pathlib
import sys
import sysconfig

import numpy as np
import torch

STDLIB_VERSION = "3.11.7"
STDLIB_SHA256 = "2e31e854ce7c5a39d3549a94420e7ba4b51281ef0f32fc8b6ddd601eff6d7d42"
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))
UNKNOWN = "?"
HELD_OUT_FILES = 9  # the last files in name order: 5% of the 168
DATA = pathlib.Path(__file__).resolve().parent / "data"  # the real path: the sandbox hides HELDOUT_FILE by it
TRAIN_FILE = DATA / "stdlib-3.11.7-train.ids.xz"
HELDOUT_FILE = DATA / "stdlib-3.11.7-heldout.ids.xz"


class CorpusError(RuntimeError):
    """The shipped corpus is missing, or a rebuild found a different standard library."""


def encode(text: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(VOCAB)}
    unknown = index[UNKNOWN]
    return np.fromiter((index.get(c, unknown) for c in text), dtype=np.uint8, count=len(text))


def decode(ids: np.ndarray | torch.Tensor) -> str:
    return "".join(VOCAB[int(i)] for i in ids)


def stdlib_files(stdlib: pathlib.Path) -> list[pathlib.Path]:
    return sorted(stdlib.glob("*.py"), key=lambda p: p.name.encode())


def build(stdlib: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """(train ids, held-out ids) from a standard library directory; CorpusError unless its files
    are 3.11.7's, byte for byte."""
    files = stdlib_files(stdlib)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    if digest.hexdigest() != STDLIB_SHA256:
        raise CorpusError(f"{stdlib} is not CPython {STDLIB_VERSION}'s standard library (sha256 "
                          f"{digest.hexdigest()[:12]}, expected {STDLIB_SHA256[:12]}): run the rebuild "
                          f"with Python {STDLIB_VERSION}")
    texts = [path.read_text(encoding="utf-8") for path in files]
    return encode("".join(texts[:-HELD_OUT_FILES])), encode("".join(texts[-HELD_OUT_FILES:]))


def _write(path: pathlib.Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".partial")
    temporary.write_bytes(lzma.compress(ids.tobytes(), preset=9))
    temporary.replace(path)


def _read(path: pathlib.Path) -> torch.Tensor:
    if not path.exists():
        raise CorpusError(f"{path} is missing: reinstall optforge, or rebuild it with "
                          "`python -m optforge.tasks.scaling.corpus` under Python 3.11.7")
    return torch.from_numpy(np.frombuffer(lzma.decompress(path.read_bytes()), dtype=np.uint8).copy())


@functools.cache
def train_ids() -> torch.Tensor:
    """The training text's character ids (uint8), what the sandboxed training jobs read."""
    return _read(TRAIN_FILE)


@functools.cache
def heldout_ids() -> torch.Tensor:
    """The held-out text's character ids: trusted side only."""
    return _read(HELDOUT_FILE)


def main() -> None:
    stdlib = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(sysconfig.get_paths()["stdlib"])
    try:
        train, heldout = build(stdlib)
    except CorpusError as exc:
        sys.exit(f"error: {exc}")
    _write(TRAIN_FILE, train)
    _write(HELDOUT_FILE, heldout)
    print(f"wrote {TRAIN_FILE.name} ({len(train)} characters) and {HELDOUT_FILE.name} ({len(heldout)})")


if __name__ == "__main__":
    main()
