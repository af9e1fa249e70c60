"""The built sandbox image against its runtime contract, on a real Docker engine.

Needs the engine and the image (`optforge sandbox build --offline`; CI: .ci/docker_setup.sh):
without them these tests skip with the fix, and fail under CI (tests/sandbox/docker_fixtures.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from optforge.agent.cli import main as cli
from optforge.sandbox import docker_image
from tests.sandbox.docker_fixtures import engine_with_image

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    engine = engine_with_image()
    yield engine
    engine.close()


def _run(client: Any, code: str, user: str = "65534:65534") -> str:
    """Run `code` with the image's Python as the runner will: no network, code mounted read-only."""
    output = client.containers.run(
        docker_image.default_image(), [docker_image.PYTHON, "-c", code], network_mode="none",
        volumes=docker_image.code_mounts(), read_only=True, user=user, remove=True,
        stdout=True, stderr=True,
    )
    return output.decode().strip()


def test_the_image_carries_the_labels_this_host_expects(client):
    labels = client.images.get(docker_image.default_image()).labels
    expected = docker_image.image_labels()
    assert {key: labels.get(key) for key in expected} == expected


def test_the_image_sets_the_contracts_environment_and_working_directory(client):
    config = client.images.get(docker_image.default_image()).attrs["Config"]
    env = set(config["Env"])
    assert {f"PYTHONPATH={docker_image.CODE_ROOT}", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"} <= env
    assert config["WorkingDir"] == "/tmp"


def test_sandbox_check_passes_every_check(capsys):
    assert cli.main(["sandbox", "check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["ok", "engine"], ["ok", "image"], ["ok", "labels"], ["ok", "smoke"]
    ]


def test_sandbox_check_of_a_missing_tag_says_how_to_build_it(client, capsys):
    bogus = f"optforge-sandbox:missing-{uuid.uuid4().hex[:8]}"
    assert cli.main(["sandbox", "check", "--image", bogus]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ok    engine")
    assert lines[1] == (
        f"FAIL  image   image {bogus} is missing: run `optforge sandbox build --offline --tag {bogus}` "
        "(or without --offline where images can be pulled)"
    )


def test_a_container_without_network_imports_the_worker_from_the_mounted_code(client):
    code = (
        "import optforge.sandbox.worker as w, optforge.tasks.jobs, sys, torch, socket;"
        "print(w.__file__); print(sys.version_info[:2]); print(torch.__version__);"
        "print(sorted(name for _, name in socket.if_nameindex()))"
    )
    worker_file, python, torch_version, interfaces = _run(client, code).splitlines()
    assert worker_file == f"{docker_image.CODE_ROOT}/optforge/sandbox/worker.py"
    assert python == str(tuple(int(p) for p in docker_image.python_version().split(".")))
    assert torch_version == docker_image.image_labels()[docker_image.LABEL_TORCH]
    assert interfaces == "['lo']"


def test_the_mounted_code_is_read_only_inside_the_container(client):
    target = f"{docker_image.CODE_ROOT}/optforge/sandbox/planted.py"
    with pytest.raises(docker.errors.ContainerError) as raised:
        _run(client, f"open({target!r}, 'w')", user="0:0")
    assert b"Read-only file system" in raised.value.stderr
