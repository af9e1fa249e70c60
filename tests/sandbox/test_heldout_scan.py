"""How the runners find held-out data to mask (sandbox/heldout.py) and what of the host a bubblewrap
worker sees at all (isolation.sandbox_view): fast checks, no sandbox started. The hostile search
that proves the result from inside both sandboxes is test_heldout_unreachable.py."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from optforge.sandbox import heldout
from optforge.sandbox.docker_config import ContainerSettings, container_config
from optforge.sandbox.docker_runner import mounted_copies
from optforge.sandbox.heldout import MIN_BYTES, Fingerprint, Found, find_copies, fingerprint
from optforge.sandbox.isolation import SYSTEM_ROOTS, bwrap_command, sandbox_view
from optforge.tasks.data import corpus_path, heldout_source_paths

CORPUS = b"the held-out corpus, long enough to be fingerprinted. " * 8
LABELS = b"id,label\n" + b"".join(b"%d,%d\n" % (i, i % 3) for i in range(64))


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """Held-out sources: a corpus file, a labels dir with a tiny __init__.py."""
    root = tmp_path / "sources"
    _write(root / "corpus.txt", CORPUS)
    _write(root / "labels" / "labels.csv", LABELS)
    _write(root / "labels" / "__init__.py", b"")
    return root


def test_the_fingerprint_is_every_held_out_file_by_size_and_sha256_but_tiny_ones(sources: Path) -> None:
    fp = fingerprint([sources / "corpus.txt", sources / "labels"])
    assert fp.contents == {(len(CORPUS), hashlib.sha256(CORPUS).hexdigest()),
                           (len(LABELS), hashlib.sha256(LABELS).hexdigest())}
    assert fp.tails == frozenset()  # not inside a Python install
    assert all(size >= MIN_BYTES for size, _ in fp.contents)  # the empty __init__.py is not in it
    assert Fingerprint.from_json(fp.to_json()) == fp


def test_the_real_sources_are_fingerprinted_by_place_in_any_python_install() -> None:
    fp = fingerprint(heldout_source_paths())
    assert ("pydoc_data",) in fp.tails
    assert ("sklearn", "datasets", "data") in fp.tails
    corpus = corpus_path().read_bytes()
    assert (len(corpus), hashlib.sha256(corpus).hexdigest()) in fp.contents


def test_copies_are_found_by_content_under_any_name_and_by_place_in_any_install(
        sources: Path, tmp_path: Path) -> None:
    fp = fingerprint([sources / "corpus.txt", sources / "labels"])
    fp = Fingerprint(fp.contents, frozenset({("pydoc_data",)}))
    visible = tmp_path / "visible"
    renamed = _write(visible / "deep" / "er" / "notes.md", CORPUS)
    other_version = _write(visible / "python3.9" / "pydoc_data" / "topics.py", b"other text")
    _write(visible / "innocent.txt", CORPUS[:-1] + b"!")  # same size, other content
    _write(visible / "empty" / "__init__.py", b"")  # as empty as a held-out __init__.py
    os.symlink(renamed, visible / "link-to-copy")
    pruned = _write(visible / "pruned" / "copy.txt", LABELS)
    found = find_copies([str(visible), str(visible / "deep")], fp, prune=[str(pruned.parent)])
    assert found == Found(dirs=(str(other_version.parent),), files=(str(renamed),))


def test_a_link_at_a_held_out_place_has_its_target_masked(tmp_path: Path) -> None:
    fp = Fingerprint(frozenset(), frozenset({("pydoc_data",)}))
    shared = tmp_path / "share" / "python-docs"
    _write(shared / "topics.py", b"topics of another version")
    (tmp_path / "lib" / "python3.12").mkdir(parents=True)
    os.symlink(shared, tmp_path / "lib" / "python3.12" / "pydoc_data")
    os.symlink("/nowhere", tmp_path / "lib" / "pydoc_data")  # dangling: nothing to mask
    assert find_copies([str(tmp_path)], fp) == Found(dirs=(str(shared),))


def test_a_wheel_holding_held_out_data_is_masked_as_a_whole(sources: Path, tmp_path: Path) -> None:
    fp = Fingerprint(fingerprint([sources / "labels"]).contents,
                     frozenset({("sklearn", "datasets", "data")}))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "scikit_learn-9.9-py3-none-any.whl", "w") as whl:
        whl.writestr("sklearn/datasets/data/other_version.csv", b"1,2\n")
    with zipfile.ZipFile(wheels / "copy.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("renamed.csv", LABELS)
    with zipfile.ZipFile(wheels / "innocent.whl", "w") as archive:
        archive.writestr("pkg/data.csv", b"x" * len(LABELS))
    _write(wheels / "broken.whl", b"not a zip")
    assert set(find_copies([str(wheels)], fp).files) == {
        str(wheels / "scikit_learn-9.9-py3-none-any.whl"), str(wheels / "copy.zip")}


def test_the_docker_probe_runs_as_a_plain_script(sources: Path, tmp_path: Path) -> None:
    """The Docker runner runs heldout.py with `python -I -c` inside the image (no optforge there)."""
    fp = fingerprint([sources / "corpus.txt"])
    image = tmp_path / "image"
    _write(image / "copy", CORPUS)
    script = Path(heldout.__file__).read_text().replace('find_copies(["/"]', f'find_copies([{str(image)!r}]')
    out = subprocess.run([sys.executable, "-I", "-c", script, fp.to_json(),
                          json.dumps([str(sources), "/no/such/path"])],
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    assert json.loads(out.stdout) == {"dirs": [str(sources)], "files": [str(image / "copy")]}


def test_copies_in_host_directories_mounted_into_a_container_are_masked_at_their_container_path(
        sources: Path, tmp_path: Path) -> None:
    data = tmp_path / "train"
    _write(data / "train.safetensors", b"weights")
    _write(data / "sub" / "corpus-copy.txt", CORPUS)
    found = mounted_copies({str(data): "/opt/optforge/data"}, fingerprint([sources / "corpus.txt"]))
    assert found == Found((), ("/opt/optforge/data/sub/corpus-copy.txt",))


def test_a_container_covers_held_out_files_with_dev_null_and_directories_with_tmpfs() -> None:
    settings = ContainerSettings(image="i", runner_id="r", campaign="c", owner="h:1", code_mounts={},
                                 hidden_paths=("/usr/lib/python3.11/pydoc_data",),
                                 hidden_files=("/opt/x/copy.csv",))
    _, host = container_config(settings, slot=0, uid=1_500_000_000)
    assert host["tmpfs"]["/usr/lib/python3.11/pydoc_data"].startswith("ro,")
    assert host["mounts"] == [{"Type": "bind", "Source": "/dev/null", "Target": "/opt/x/copy.csv",
                               "ReadOnly": True}]


# -- what a bubblewrap worker sees ------------------------------------------------------------


def _bwrap(tmp_path: Path, hidden: list[str] | None = None, data_dir: Path | None = None) -> list[str]:
    return bwrap_command("bwrap", ["python"], host_root=tmp_path, home=os.environ.get("HOME"),
                         data_dir=data_dir, hidden_paths=hidden or [], env={})


def _pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, arg in enumerate(argv) if arg == flag]


def test_the_sandbox_root_is_an_allow_list_not_the_hosts_root(tmp_path: Path) -> None:
    argv = _bwrap(tmp_path)
    binds = dict(_pairs(argv, "--ro-bind"))
    assert "/" not in binds  # no `--ro-bind / /`: the root is bubblewrap's own empty tmpfs
    assert argv[argv.index("--remount-ro") + 1] == "/"  # ...made read-only once set up
    visible = set(binds) | {link for _, link in _pairs(argv, "--symlink")}
    top_level = {"/" + Path(p).parts[1] for p in visible if len(Path(p).parts) > 1}
    view = sandbox_view(os.environ.get("HOME"), None)
    needed = {"/" + Path(p).parts[1] for p in view.kept}
    assert top_level <= set(SYSTEM_ROOTS) | {"/sys"} | needed, top_level
    for absent in ("/opt", "/var", "/srv", "/mnt", "/media", "/boot"):
        if absent not in needed:
            assert absent not in top_level


def test_the_interpreter_its_packages_and_the_data_dir_are_visible(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    view = sandbox_view(os.environ.get("HOME"), data)
    roots = view.roots()
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    for needed in (stdlib, os.path.realpath(sysconfig.get_paths()["purelib"]), str(data)):
        assert any(needed == r or needed.startswith(r.rstrip("/") + "/") for r in roots), needed


def test_hidden_paths_are_masked_last_and_only_once(tmp_path: Path) -> None:
    hidden = tmp_path / "heldout"
    hidden.mkdir()
    (tmp_path / "labels.csv").write_bytes(LABELS)
    argv = _bwrap(tmp_path, [str(hidden), str(hidden), str(tmp_path / "labels.csv")])
    assert argv.count(str(hidden)) == 1
    tmpfs = argv.index(str(hidden)) - 1
    dev_null = argv.index(str(tmp_path / "labels.csv")) - 2
    assert argv[tmpfs] == "--tmpfs" and argv[dev_null:dev_null + 2] == ["--ro-bind", "/dev/null"]
    last_mount = max(i for i, arg in enumerate(argv) if arg in ("--ro-bind", "--bind", "--tmpfs"))
    assert last_mount in (tmpfs, dev_null)
