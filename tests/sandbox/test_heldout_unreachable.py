"""Held-out data is unreachable from inside the sandbox, on both backends, found by content.

A hostile candidate (tests/sandbox/heldout_search.py) walks everything it can see from `/` and
looks for held-out data by content: files with the sha256 of a held-out source file (every copy of
`pydoc_data/topics.py` and of sklearn's bundled data on the host, whatever Python or venv it belongs
to), and files that hold text of the char_corpus's held-out split. The runner is configured exactly
as evaluations configure it (agent/runtime.open_runner). Two controls keep the test from passing
vacuously: the job plants a copy and a probe in its own scratch directory and the search must find
both, and (process backend) the same search in a sandbox that masks nothing must find the real
files.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import sys
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from optforge.agent.config import SandboxConfig
from optforge.agent.evaluation.runtime import WARMUP, open_runner, train_data_dir
from optforge.sandbox import DockerRunner, Job, Limits, ProcessRunner, Runner
from optforge.sandbox.docker_image import default_image
from optforge.tasks.data import corpus_path, heldout_source_paths
from tests.sandbox.conftest import code_job, needs_bwrap
from tests.sandbox.docker_fixtures import engine_with_image
from tests.sandbox.heldout_search import (
    PLANTED_COPY,
    PLANTED_PROBE,
    Outcome,
    parse,
    reference,
    search_source,
)

ENTRY = "optforge.tasks.jobs:run_job"
BACKENDS = [pytest.param("process", marks=needs_bwrap),
            pytest.param("docker", marks=pytest.mark.docker)]
CONTROL = {f"{PLANTED_COPY}:sha256", f"{PLANTED_PROBE}:probe"}


def run_search(runner: Runner) -> Outcome:
    job = Job(ENTRY, {"action": "tier0", "kind": "optimizer", "source": search_source()},
              Limits(wall_seconds=300, memory_mb=4096))
    result = runner.run(job)
    assert result.status == "ok", (result.status, result.error, result.output_tail[-3000:])
    return parse(result.output_tail)


@pytest.fixture(scope="module", params=BACKENDS)
def runner(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    """The backend exactly as evaluations open it (held-out sources from tasks/data.py)."""
    backend = request.param
    if backend == "docker":
        engine_with_image().close()
    reference()  # the host's walk, before any worker runs
    cache = tmp_path_factory.mktemp(f"cache-{backend}")
    with open_runner(SandboxConfig(backend=backend, workers=1), cache) as opened:
        yield opened


@pytest.mark.slow
def test_no_heldout_data_is_readable_anywhere_in_the_sandbox(runner: Runner) -> None:
    ref = reference()
    outcome = run_search(runner)
    print(runner.environment["sandbox"], outcome.stats)
    assert outcome.planted() == CONTROL, f"the control failed, the search is broken: {outcome}"
    assert outcome.stats["files"] > 10_000, outcome.stats  # it walked the interpreter, torch...
    assert outcome.leaks(ref) == []


@needs_bwrap
@pytest.mark.slow
def test_the_search_finds_the_heldout_files_in_a_sandbox_that_masks_nothing() -> None:
    """The control for the control: the same candidate, in a bubblewrap sandbox given no hidden
    paths, finds the running interpreter's corpus and sklearn's data where they really are."""
    ref = reference()
    with ProcessRunner(workers=1, isolation="bwrap") as unmasked:
        outcome = run_search(unmasked)
    assert outcome.planted() == CONTROL
    leaks = "\n".join(outcome.leaks(ref))
    corpus = os.path.realpath(corpus_path())
    assert f"{corpus} (a copy of" in leaks, leaks
    sklearn_data = Path(heldout_source_paths()[0]).resolve()
    assert f"{sklearn_data / 'breast_cancer.csv'} (a copy of" in leaks, leaks


# Where Python installs keep their copy of the corpus (the system's, /usr/local's, pyenv's, conda's).
CORPUS_GLOBS = ("/usr/lib/python3*/pydoc_data/topics.py", "/usr/local/lib/python3*/pydoc_data/topics.py",
                os.path.expanduser("~/.pyenv/versions/*/lib/python*/pydoc_data/topics.py"),
                "/opt/*/lib/python3*/pydoc_data/topics.py")

READ_ALL = """
import hashlib
result = {}
for path in PATHS:
    try:
        with open(path, "rb") as f:
            result[path] = hashlib.sha256(f.read()).hexdigest()
    except OSError as exc:
        result[path] = type(exc).__name__
"""


@needs_bwrap
def test_every_copy_of_the_corpus_and_a_copy_planted_in_the_data_dir_read_as_nothing(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """The quick check (the full search above is slow): the issue's exploit, reading another
    Python's pydoc topics, and a copy of held-out data in the data dir, by their known paths."""
    data = tmp_path_factory.mktemp("data", numbered=True)
    os.chmod(data, 0o755)
    (data / "train.txt").write_text("training data")
    planted = data / "copied-by-mistake.csv"
    planted.write_bytes((Path(heldout_source_paths()[0]) / "breast_cancer.csv").read_bytes())
    planted.chmod(0o644)
    corpora = sorted({os.path.realpath(p) for pattern in CORPUS_GLOBS for p in glob.glob(pattern)}
                     | {os.path.realpath(corpus_path())})
    sklearn_data = sorted(str(p) for p in Path(heldout_source_paths()[0]).glob("*.csv*"))
    paths = [*corpora, *sklearn_data, str(planted), str(data / "train.txt")]
    with ProcessRunner(workers=1, data_dir=data, hidden_paths=heldout_source_paths(),
                       isolation="bwrap") as runner:
        result = runner.run(code_job(f"PATHS = {paths!r}\n{READ_ALL}"))
    assert result.status == "ok", result.output_tail
    empty = hashlib.sha256(b"").hexdigest()
    masked = (empty, "FileNotFoundError", "PermissionError")  # /dev/null on a nodev bind: EACCES
    readable = {p: v for p, v in result.meta.items() if v not in masked}
    train = str(data / "train.txt")
    assert readable == {train: hashlib.sha256(b"training data").hexdigest()}
    assert len(corpora) >= 1 + (sys.base_prefix != "/usr")  # this interpreter's and the system's


def _tar(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


@pytest.mark.docker
@pytest.mark.slow
def test_a_user_supplied_image_with_held_out_data_has_every_copy_masked(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Our image holds no held-out data; an image someone else built may. One derived from ours
    with the corpus at another Python's place, sklearn's data under another name and a wheel of it:
    the runner finds and covers all three (and, as the control, a runner told to hide nothing
    leaves them for the search to find)."""
    client = engine_with_image()
    sklearn_data = Path(heldout_source_paths()[0])
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("sklearn/datasets/data/iris.csv", (sklearn_data / "iris.csv").read_bytes())
    planted = {"/usr/local/lib/python3.9/pydoc_data/topics.py": corpus_path().read_bytes(),
               "/srv/renamed.csv": (sklearn_data / "breast_cancer.csv").read_bytes(),
               "/srv/scikit_learn-0.0-py3-none-any.whl": wheel.getvalue()}
    dockerfile = f"FROM {default_image()}\n" + "".join(
        f"COPY f{i} {path}\n" for i, path in enumerate(planted))
    context = _tar({"Dockerfile": dockerfile.encode(),
                    **{f"f{i}": data for i, data in enumerate(planted.values())}})
    tag = f"optforge-sandbox-test:heldout-{uuid.uuid4().hex[:8]}"
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True)
    try:
        cache = tmp_path_factory.mktemp("cache-user-image")
        data = train_data_dir(cache)
        ref = reference()
        outcomes = {}
        for hidden in (heldout_source_paths(), []):
            with DockerRunner(workers=1, warmup=WARMUP, data_dir=data, hidden_paths=hidden,
                              image=tag, campaign=f"test-heldout-{uuid.uuid4().hex[:8]}") as runner:
                outcomes[bool(hidden)] = run_search(runner)
        for outcome in outcomes.values():
            assert outcome.planted() == CONTROL
        assert outcomes[True].leaks(ref) == []
        leaks = "\n".join(outcomes[False].leaks(ref))
        for path in ("/usr/local/lib/python3.9/pydoc_data/topics.py", "/srv/renamed.csv",
                     "/srv/scikit_learn-0.0-py3-none-any.whl!sklearn/datasets/data/iris.csv"):
            assert f"{path} (" in leaks, leaks
    finally:
        client.images.remove(tag, force=True)
        client.close()
