"""The sandbox image's recipe, pins, tag and diagnostics, without a Docker engine."""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import re
import subprocess
import tomllib
from types import SimpleNamespace

import docker
import pytest

from optforge.agent.cli import main as cli
from optforge.sandbox import SandboxUnavailable, docker_image, image_build

REPO = pathlib.Path(__file__).resolve().parents[2]
NO_ENGINE = "unix:///nonexistent/optforge-test/docker.sock"


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    rows = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def test_requirements_pin_the_hosts_installed_versions():
    pins = dict(line.split("==") for line in docker_image.requirements())
    for name in docker_image.SANDBOX_DEPENDENCIES:
        assert pins[name] == importlib.metadata.version(name)
    # torch's own runtime dependencies are pinned too, so the closure resolves the same everywhere
    assert pins["filelock"] == importlib.metadata.version("filelock")
    assert pins["sympy"] == importlib.metadata.version("sympy")


def test_requirements_are_sorted_exact_pins_with_no_extras():
    pins = docker_image.requirements()
    assert pins == sorted(pins)
    assert all(re.fullmatch(r"[a-z0-9-]+==[A-Za-z0-9.+!-]+", line) for line in pins), pins
    assert not any(line.startswith(("pytest", "pyyaml", "optree")) for line in pins)


def test_recipe_hash_changes_with_the_dockerfile_and_with_a_pin():
    text, pins = docker_image.dockerfile_text(), docker_image.requirements()
    reference = docker_image.recipe_hash(text, pins)
    assert reference == docker_image.recipe_hash()
    assert docker_image.recipe_hash(text + "\n# a comment\n", pins) != reference
    bumped = [line if not line.startswith("numpy==") else "numpy==0.0.1" for line in pins]
    assert docker_image.recipe_hash(text, bumped) != reference


def test_default_image_is_the_repo_tagged_with_the_recipe_hash():
    assert docker_image.default_image() == f"optforge-sandbox:{docker_image.recipe_hash()[:12]}"
    assert docker_image.is_image_reference(docker_image.default_image())


def test_dockerfile_takes_the_base_as_an_argument_before_the_first_stage():
    rows = _instructions(docker_image.dockerfile_text())
    assert rows[0] == ("ARG", "BASE=python:3.11-slim")
    assert rows[1][0] == "FROM" and rows[1][1].startswith("${BASE}")


def test_dockerfile_implements_the_runtime_contract():
    rows = _instructions(docker_image.dockerfile_text())
    final = rows[max(i for i, (word, _) in enumerate(rows) if word == "FROM"):]
    env = " ".join(args for word, args in final if word == "ENV").split()
    assert f"PYTHONPATH={docker_image.CODE_ROOT}" in env
    assert {"PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"} <= set(env)
    assert ("WORKDIR", "/tmp") in final
    assert any(word == "RUN" and f"mkdir -p {docker_image.CODE_ROOT}/optforge" in args for word, args in final)
    venv = docker_image.PYTHON.removesuffix("/bin/python")
    assert any(word == "COPY" and f"{venv} {venv}" in args for word, args in final)


def test_dockerfile_ships_as_package_data():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "optforge.sandbox.image" in config["packages"]
    assert "Dockerfile" in config["package-data"]["optforge.sandbox.image"]
    assert docker_image.dockerfile_text() == (REPO / "sandbox" / "image" / "Dockerfile").read_text()


def test_code_mounts_are_the_hosts_sandbox_and_tasks_packages_read_only():
    mounts = docker_image.code_mounts()
    assert mounts == {
        str(REPO / "sandbox"): {"bind": "/opt/optforge/src/optforge/sandbox", "mode": "ro"},
        str(REPO / "tasks"): {"bind": "/opt/optforge/src/optforge/tasks", "mode": "ro"},
    }


def test_connect_to_an_absent_engine_says_where_and_how_to_start_one(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    with pytest.raises(SandboxUnavailable) as raised:
        docker_image.connect(timeout=5)
    message = str(raised.value)
    assert message.startswith(f"no Docker engine at {NO_ENGINE} (no such socket): start dockerd")
    assert "\n" not in message


def test_sandbox_check_without_an_engine_fails_with_the_fix(monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    assert cli.main(["sandbox", "check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("FAIL  engine  no Docker engine at")
    assert "sudo dockerd" in out[0]


def test_sandbox_build_without_an_engine_is_one_error_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    monkeypatch.setenv("OPTFORGE_CACHE_DIR", str(tmp_path))
    assert cli.main(["sandbox", "build", "--offline"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("optforge: error: no Docker engine at")


@pytest.mark.parametrize("option", ["--tag", "--base"])
def test_build_rejects_a_malformed_image_name_before_touching_the_engine(option, capsys):
    assert cli.main(["sandbox", "build", option, "Not A Tag"]) == 2
    assert capsys.readouterr().err.startswith(f"optforge: error: {option} 'Not A Tag' is not an image name")


def test_image_references_follow_dockers_grammar():
    good = ["optforge-sandbox:0123456789ab", "python:3.11-slim", "nvidia/cuda:12.6.3-runtime-ubuntu22.04",
            "localhost:5000/team/optforge:v1", "optforge-debian-base:bookworm"]
    bad = ["Upper:tag", "a b", "name:", "name:-tag", ""]
    assert all(docker_image.is_image_reference(ref) for ref in good)
    assert not any(docker_image.is_image_reference(ref) for ref in bad)


class _FakeImages:
    """The part of the SDK's `client.images` that image_problems uses, over a dict of labels."""

    def __init__(self, labels_by_tag: dict[str, dict[str, str]]):
        self.labels_by_tag = labels_by_tag

    def get(self, tag: str) -> SimpleNamespace:
        if tag not in self.labels_by_tag:
            raise docker.errors.ImageNotFound(f"No such image: {tag}")
        return SimpleNamespace(labels=self.labels_by_tag[tag])


def _client(labels_by_tag: dict[str, dict[str, str]]) -> SimpleNamespace:
    return SimpleNamespace(images=_FakeImages(labels_by_tag))


def test_a_missing_default_image_says_to_build_it_offline():
    image = docker_image.default_image()
    problems = docker_image.image_problems(_client({}), image)
    assert problems == [docker_image.Problem(
        "image", f"image {image} is missing: run `optforge sandbox build --offline` "
                 "(or without --offline where images can be pulled)")]


def test_a_missing_custom_tag_says_to_build_that_tag():
    [problem] = docker_image.image_problems(_client({}), "optforge-sandbox:mine")
    assert "run `optforge sandbox build --offline --tag optforge-sandbox:mine`" in problem.message


def test_an_image_with_the_hosts_labels_has_no_problems():
    assert docker_image.image_problems(_client({"x:1": docker_image.image_labels()}), "x:1") == []


def test_an_image_with_another_torch_is_reported_with_both_versions():
    labels = {**docker_image.image_labels(), docker_image.LABEL_TORCH: "2.0.0"}
    [problem] = docker_image.image_problems(_client({"x:1": labels}), "x:1")
    assert problem.check == "torch"
    assert f"has torch 2.0.0, this host has {importlib.metadata.version('torch')}" in problem.message
    assert "optforge sandbox build" in problem.message


def test_an_image_without_the_sandbox_label_is_not_ours():
    [problem] = docker_image.image_problems(_client({"python:3.11-slim": {}}), "python:3.11-slim")
    assert problem.check == "image" and "is not an optforge sandbox image" in problem.message


def test_check_stops_before_the_smoke_run_when_the_image_is_wrong():
    # the fake client has no `containers`: a smoke run would raise AttributeError
    problems = docker_image.check(_client({}), "x:1", smoke=True)
    assert [p.check for p in problems] == ["image"]


def test_debian_mirror_comes_from_deb822_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n"
    )
    assert image_build.debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_debian_mirror_comes_from_a_one_line_sources_list(tmp_path):
    (tmp_path / "sources.list").write_text(
        "# local\ndeb [arch=amd64] http://ftp.example.org/debian bookworm main\n"
    )
    assert image_build.debian_mirror(tmp_path) == "http://ftp.example.org/debian"


def test_debian_mirror_falls_back_to_deb_debian_org_on_other_distributions(tmp_path):
    (tmp_path / "sources.list").write_text("deb http://archive.ubuntu.com/ubuntu jammy main universe\n")
    assert image_build.debian_mirror(tmp_path) == image_build.DEFAULT_MIRROR


def test_image_platforms_cover_every_manylinux_up_to_bookworms_glibc():
    tags = image_build.image_platforms("amd64")
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in tags
    assert "manylinux2014_x86_64" in tags and not any("2_37" in tag for tag in tags)


def test_a_cached_wheelhouse_is_reused_without_downloading(tmp_path):
    pins = docker_image.requirements()
    cached = image_build.wheelhouse_dir(pins, tmp_path)
    cached.mkdir(parents=True)
    lines: list[str] = []
    assert image_build.wheelhouse(pins, tmp_path, lines.append) == cached
    assert lines == [f"wheelhouse {cached} (cached)"]
    assert image_build.wheelhouse_dir([*pins, "extra==1"], tmp_path) != cached


def test_build_context_holds_the_recipe_the_pins_and_the_wheels(tmp_path):
    wheels = tmp_path / "wheels-cache"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"wheel")
    context = tmp_path / "context"
    context.mkdir()
    image_build.stage_context(context, ["demo==1.0"], wheels)
    assert (context / "Dockerfile").read_text() == docker_image.dockerfile_text()
    assert (context / "requirements.txt").read_text() == "demo==1.0\n"
    assert (context / "wheels" / "demo-1.0-py3-none-any.whl").read_bytes() == b"wheel"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_mount_left_inside_the_debootstrap_tree_is_unmounted_before_deleting(tmp_path):
    work = tmp_path / "debootstrap"
    (work / "root" / "proc").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "none", str(work / "root" / "proc")], check=True)
    (work / "root" / "proc" / "host-file").write_text("must survive as long as it is mounted")
    assert image_build.mounts_under(work) == [str(work.resolve() / "root" / "proc")]
    image_build._remove_chroot(work)
    assert not work.exists() and image_build.mounts_under(tmp_path) == []


def test_a_base_that_cannot_be_pulled_points_at_the_offline_build():
    # the engine's own words when no registry answers (measured on this machine)
    error = ('Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on '
             "10.255.255.53:53: no such host")
    message = image_build._build_failure(error, "python:3.11-slim")
    assert message.startswith("docker build failed: the base image python:3.11-slim cannot be pulled")
    assert message.endswith("`optforge sandbox build --offline`")


def test_any_other_build_failure_keeps_the_engines_last_line():
    error = "The command '/bin/sh -c pip install' returned a non-zero code: 1\n"
    assert image_build._build_failure(error, "b") == (
        "docker build failed: The command '/bin/sh -c pip install' returned a non-zero code: 1 (full output above)"
    )


def test_offline_build_on_another_python_is_refused_with_the_online_alternative(monkeypatch, tmp_path):
    # bookworm's python3 is 3.11: wheels pinned for a 3.12 host would not install in that base
    monkeypatch.setattr(docker_image, "python_version", lambda: "3.12")
    with pytest.raises(SandboxUnavailable, match=r"optforge sandbox build --base python:3.12-slim"):
        image_build.plan(offline=True, base=None, tag=None, cache=tmp_path)


def test_build_plans_fill_in_the_bases_and_the_hosts_tag(tmp_path):
    offline = image_build.plan(offline=True, base=None, tag=None, cache=tmp_path, mirror="http://m/debian")
    assert (offline.base, offline.tag, offline.mirror) == (
        image_build.DEBIAN_BASE, docker_image.default_image(), "http://m/debian")
    online = image_build.plan(offline=False, base=None, tag="x:1", cache=tmp_path)
    assert (online.base, online.tag, online.torch_index) == (
        f"python:{docker_image.python_version()}-slim", "x:1", image_build.DEFAULT_TORCH_INDEX)
