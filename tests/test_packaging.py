"""Packaging: every folder with an __init__.py ships, and no top-level agent/tasks module leaks."""

import pathlib
import tomllib

REPO = pathlib.Path(__file__).resolve().parents[1]
TOP = {"agent", "sandbox", "tasks", "archive"}
# The `optforge` package itself (the lazy Python API) lives in a folder of agent/: the repository's
# top level is fixed. It installs as `optforge`, not as a subpackage of optforge.agent.
ROOT_FOLDER = "agent/_root"


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_subpackage_is_listed_for_installation():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    on_disk = {
        "optforge." + ".".join(init.parent.relative_to(REPO).parts)
        for folder in TOP
        for init in (REPO / folder).rglob("__init__.py")
        if "__pycache__" not in init.parts and init.parent != REPO / ROOT_FOLDER
    } | {"optforge"}
    assert on_disk == listed, f"add to / remove from pyproject packages: {on_disk ^ listed}"


def test_folders_install_under_the_optforge_namespace_only():
    config = _pyproject()["tool"]["setuptools"]
    assert config["package-dir"] == {
        "optforge": ROOT_FOLDER,
        **{f"optforge.{name}": name for name in TOP},
    }
    assert (REPO / ROOT_FOLDER / "__init__.py").is_file()
    assert all(name == "optforge" or name.startswith("optforge.") for name in config["packages"])


def test_torch_requirement_is_a_range():
    deps = _pyproject()["project"]["dependencies"]
    torch = next(d for d in deps if d.startswith("torch"))
    assert "==" not in torch and "<" in torch and ">=" in torch
