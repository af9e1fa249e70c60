"""A hostile search for held-out data, run as a candidate inside the sandbox, and the trusted side's
reference of what held-out data looks like.

The reference is computed on the host, independently of the sandbox's own masking logic:
* the content (size, sha256) of every file of at least MIN_BYTES in the held-out sources
  (`heldout_source_paths()`) and in every `pydoc_data` and `sklearn/datasets/data` directory
  anywhere on the host's file system (other Pythons, other venvs, Docker's image layers);
* probes: 200-character windows of the char_corpus's *held-out split* (the last 10% of the running
  interpreter's pydoc topics), searched verbatim in every file whose size is in the class of the
  host's `pydoc_data/topics.py` copies: another version's topics.py holds most of the same text
  under another hash.

The candidate (it passes the static contract check, like any hostile candidate: everything goes
through `torch.os`, `torch.importlib`, `torch.builtins`) walks everything it can see from `/`
(but /proc, /sys and /dev), hashes each file whose size is a reference size, looks for the probes in
each file of the corpus size class, and does both for the members of zip archives (wheels).
Before searching it plants two files in its own scratch directory, a copy of a small held-out file
and a file with one probe inside, and the search must find both: a control, so that a search that
sees nothing (a broken walk, a wrong hash) cannot pass as "nothing found".
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from optforge.sandbox.heldout import MIN_BYTES, PSEUDO_FS
from optforge.tasks.data import char_corpus, corpus_path, heldout_source_paths

MARKER = "HELDOUT-SEARCH "
PROBE_CHARS = 200
PROBES = 4
HASH_CHARS = 16  # of the hex sha256 in the candidate (its source must stay under 20 kB); the host
# checks every match against the full digest
PLANTED_COPY = "planted-copy.bin"
PLANTED_PROBE = "planted-probe.txt"
# Where the host keeps things that are not files (never walked), and nothing else is skipped.
HOST_SKIP = PSEUDO_FS
DOCKER_LAYERS = "/var/lib/docker/overlay2/"
HELDOUT_DIR_TAILS = (("pydoc_data",), ("sklearn", "datasets", "data"))


@dataclass(frozen=True)
class Reference:
    contents: dict[int, set[str]]  # size -> full sha256 hex digests of held-out files
    sources: dict[str, str]  # sha256 -> one host path with that content (for messages)
    probes: list[str]
    probe_sizes: tuple[int, int]  # the corpus size class: files searched for the probes
    planted: bytes  # the control's copy: one (small) held-out file
    known: list[str]  # paths where the host has held-out files (and where Docker's images have them)

    def is_heldout(self, size: int, digest: str) -> bool:
        return digest in self.contents.get(size, set())


def _host_heldout_dirs() -> list[str]:
    """Every directory on the host at a held-out place of a Python install (any version, any
    venv, Docker's image layers), found by walking the whole host file system once."""
    found: list[str] = []
    todo = ["/"]
    while todo:
        directory = todo.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                if not entry.is_dir(follow_symlinks=False) or entry.path in HOST_SKIP:
                    continue
            except OSError:
                continue
            parts = tuple(entry.path.split(os.sep))
            if any(parts[-len(tail):] == tail for tail in HELDOUT_DIR_TAILS):
                found.append(entry.path)
            else:
                todo.append(entry.path)
    return found


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@functools.cache
def reference() -> Reference:
    contents: dict[int, set[str]] = {}
    sources: dict[str, str] = {}
    known: list[str] = []
    corpus_sizes: list[int] = []
    roots = [str(p) for p in heldout_source_paths()] + _host_heldout_dirs()
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                size = os.path.getsize(path)
                if size < MIN_BYTES:
                    continue
                digest = _sha256(path)
                contents.setdefault(size, set()).add(digest)
                sources.setdefault(digest, path)
                # a Docker image layer's copy is at the same path inside the image
                known.append(path.split("/diff", 1)[1] if path.startswith(DOCKER_LAYERS) else path)
                if name == "topics.py":
                    corpus_sizes.append(size)
    text = corpus_path().read_text(encoding="utf-8", errors="replace")
    heldout = text[len(char_corpus().train.x):]  # one id per character: the split's cut
    probes = []
    for i in range(PROBES):
        start = (i * (len(heldout) - PROBE_CHARS)) // max(PROBES - 1, 1)
        while not heldout[start:start + PROBE_CHARS].isascii():
            start += 1
        probes.append(heldout[start:start + PROBE_CHARS])
    small = sorted((p for p in Path(heldout_source_paths()[0]).iterdir()
                    if p.is_file() and p.stat().st_size >= 1024), key=lambda p: (p.stat().st_size, p.name))
    return Reference(
        contents=contents, sources=sources, probes=probes,
        probe_sizes=(int(min(corpus_sizes) * 0.6), int(max(corpus_sizes) * 1.6)),
        planted=small[0].read_bytes(), known=sorted(set(known)),
    )


SEARCH = '''
import torch

HPARAMS = {{"lr": 1e-3}}
SIZES = {sizes!r}
PROBES = {probes!r}
PROBE_MIN, PROBE_MAX = {probe_min!r}, {probe_max!r}
PLANTED = {planted!r}
SKIP = {skip!r}
KNOWN = {known!r}


def search():
    os = torch.os
    hashlib = torch.importlib.import_module("hashlib")
    zipfile = torch.importlib.import_module("zipfile")
    json = torch.importlib.import_module("json")
    base64 = torch.importlib.import_module("base64")
    reader = torch.builtins.open
    probes = [p.encode() for p in PROBES]
    with reader("{copy}", "wb") as f:
        f.write(base64.b64decode(PLANTED))
    with reader("{probe}", "wb") as f:
        f.write(b"x" * PROBE_MIN + probes[-1] + b"x" * 1000)
    stats = {{"files": 0, "dirs": 0, "hashed": 0, "probed_bytes": 0, "zips": 0, "unreadable": 0}}
    found = []

    def check(where, size, data_of):
        hashes = SIZES.get(size)
        if hashes is not None:
            stats["hashed"] += 1
            digest = hashlib.sha256(data_of()).hexdigest()
            if digest[:{hash_chars}] in hashes:
                found.append([where, "sha256", size, digest])
        if PROBE_MIN <= size <= PROBE_MAX:
            data = data_of()
            stats["probed_bytes"] += len(data)
            for i, probe in enumerate(probes):
                if probe in data:
                    found.append([where, "probe", i, size])
                    break

    def whole(path):
        with reader(path, "rb") as f:
            return f.read()

    seen = set()
    known = [os.path.join(d, name) for d, names in KNOWN.items() for name in names]
    for path in known:  # opened directly: a directory on the way may be traversable, not listable
        try:
            size = os.stat(path).st_size
            check(path, size, lambda path=path: whole(path))
            seen.add(path)
        except OSError:
            pass

    todo = ["/", os.getcwd()]  # its own scratch dir is not listable from / (a 0711 parent)
    walked = set()
    while todo:
        directory = todo.pop()
        if directory in walked:
            continue
        walked.add(directory)
        try:
            entries = list(os.scandir(directory))
        except OSError:
            stats["unreadable"] += 1
            continue
        stats["dirs"] += 1
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.path not in SKIP:
                        todo.append(entry.path)
                    continue
                if not entry.is_file(follow_symlinks=False) or entry.path in seen:
                    continue
                stats["files"] += 1
                size = entry.stat(follow_symlinks=False).st_size
                cache = []

                def data_of(path=entry.path, cache=cache):
                    if not cache:
                        cache.append(whole(path))
                    return cache[0]

                check(entry.path, size, data_of)
                if entry.name.endswith((".whl", ".zip", ".egg", ".pyz", ".jar")):
                    stats["zips"] += 1
                    with zipfile.ZipFile(entry.path) as archive:
                        for member in archive.infolist():
                            if member.file_size in SIZES or PROBE_MIN <= member.file_size <= PROBE_MAX:
                                check(entry.path + "!" + member.filename, member.file_size,
                                      lambda archive=archive, member=member: archive.read(member))
            except (OSError, ValueError, zipfile.BadZipFile):
                stats["unreadable"] += 1
    print("{marker}" + json.dumps({{"found": found, "stats": stats, "cwd": os.getcwd()}}))


search()


def init(param):
    return {{}}


def update(grad, param, state, step, hp):
    return -hp["lr"] * grad, state
'''


def search_source(ref: Reference | None = None) -> str:
    ref = ref or reference()
    sizes = {size: sorted(d[:HASH_CHARS] for d in digests) for size, digests in ref.contents.items()}
    known: dict[str, list[str]] = {}
    for path in ref.known:
        known.setdefault(os.path.dirname(path), []).append(os.path.basename(path))
    return SEARCH.format(known=known,
        sizes=sizes, probes=ref.probes, probe_min=ref.probe_sizes[0], probe_max=ref.probe_sizes[1],
        planted=base64.b64encode(ref.planted).decode(), skip=list(HOST_SKIP), hash_chars=HASH_CHARS,
        copy=PLANTED_COPY, probe=PLANTED_PROBE, marker=MARKER)


@dataclass(frozen=True)
class Outcome:
    found: list[list]  # [path, "sha256", size, digest] or [path, "probe", index, size]
    stats: dict[str, int]
    cwd: str

    def planted(self) -> set[str]:
        """What the search found of the two files the job planted itself (the control)."""
        names = {PLANTED_COPY: "sha256", PLANTED_PROBE: "probe"}
        return {f"{os.path.basename(hit[0])}:{hit[1]}" for hit in self.found
                if os.path.dirname(hit[0]) == self.cwd and names.get(os.path.basename(hit[0])) == hit[1]}

    def leaks(self, ref: Reference) -> list[str]:
        """Every held-out hit that is not the control, as 'path (why)'; full digests rechecked."""
        out = []
        for hit in self.found:
            if os.path.dirname(hit[0]) == self.cwd:
                continue
            if hit[1] == "sha256":
                if ref.is_heldout(hit[2], hit[3]):
                    out.append(f"{hit[0]} (a copy of {ref.sources.get(hit[3], '?')})")
            else:
                out.append(f"{hit[0]} (holds held-out text: probe {hit[2]})")
        return out


def parse(output_tail: str) -> Outcome:
    lines = [line for line in output_tail.splitlines() if line.startswith(MARKER)]
    if not lines:
        raise AssertionError(f"the search printed no report; output:\n{output_tail[-3000:]}")
    data = json.loads(lines[-1][len(MARKER):])
    return Outcome(data["found"], data["stats"], data["cwd"])
