"""The sandbox image's runtime contract and its diagnostics, shared by the Docker runner and the CLI.

The image (recipe: image/Dockerfile) is the *environment*: Python with a venv of the sandbox-side
dependencies pinned to the host's installed versions, and no held-out data (no scikit-learn, no
pydoc_data: the build fails if a copy is left). optforge's own code is *not* baked in: the
runner bind-mounts the host's `optforge.sandbox` and `optforge.tasks` package directories read-only
under CODE_ROOT, so the worker protocol always matches the host's code and a code change needs no
rebuild. The tag is a hash of the recipe and the pins, so a host whose pins change asks for a new
image instead of silently running an old one.

`docker` (the SDK) is imported inside functions only: `optforge.sandbox` is also imported *inside*
the container, where the SDK is not installed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import pathlib
import re
import sys
from dataclasses import dataclass
from typing import Any

from optforge.sandbox.errors import SandboxUnavailable

IMAGE_REPO = "optforge-sandbox"
PYTHON = "/opt/optforge/venv/bin/python"
CODE_ROOT = "/opt/optforge/src"
# The host packages mounted (read-only) into CODE_ROOT/optforge/<name>: the worker and the jobs it runs.
MOUNTED_PACKAGES = ("sandbox", "tasks")

LABEL_SANDBOX = "org.optforge.sandbox"
LABEL_TORCH = "org.optforge.torch"
LABEL_PYTHON = "org.optforge.python"
LABEL_RECIPE = "org.optforge.recipe"

# What the worker and the jobs import inside the container (tasks/, sandbox/). Their own
# dependencies are pinned too (requirements()), so one set of pins gives one environment.
# Not scikit-learn (nor scipy, which only it and the host's scoring need): its wheel ships the
# datasets whose held-out splits score candidates. Jobs read only the train splits the host exports.
SANDBOX_DEPENDENCIES = ("torch", "numpy", "safetensors")

# The import the smoke check runs inside a container: the whole worker and job stack.
SMOKE_IMPORT = "import torch, optforge.sandbox.worker, optforge.tasks.jobs; print(torch.__version__)"

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class Problem:
    """One failed check: which one, and a single line that says what is wrong and how to fix it."""

    check: str
    message: str


def dockerfile_text() -> str:
    return importlib.resources.files("optforge.sandbox.image").joinpath("Dockerfile").read_text()


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _runtime_requirements(name: str) -> list[str]:
    """Names of `name`'s runtime dependencies (extras left out) as its metadata lists them."""
    names = []
    for line in importlib.metadata.requires(name) or []:
        requirement, _, marker = line.partition(";")
        if "extra" in marker:
            continue  # optional features, not installed for a plain `pip install name`
        match = _NAME.match(requirement)
        if match:
            names.append(match.group(1))
    return names


def requirements() -> list[str]:
    """`name==version` for SANDBOX_DEPENDENCIES and everything they pull in, at the host's versions.

    The closure is pinned (not only the five direct dependencies) so that the same pins always
    resolve to the same environment, online or offline. A dependency whose environment marker keeps
    it off this host is not installed here, so it is left out. Sorted, so the hash is stable.
    """
    pins: dict[str, str] = {}
    todo = list(SANDBOX_DEPENDENCIES)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in pins:
            continue
        version = _installed_version(name)
        if version is None:
            if name in SANDBOX_DEPENDENCIES:
                raise SandboxUnavailable(f"{name} is not installed on this host: pip install optforge's dependencies first")
            continue
        pins[key] = version
        todo.extend(_runtime_requirements(name))
    return [f"{name}=={pins[name]}" for name in sorted(pins)]


def python_version() -> str:
    """The host's Python as x.y: the image's venv uses the same, so the pins resolve the same wheels."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def recipe_hash(dockerfile: str | None = None, pins: list[str] | None = None) -> str:
    """sha256 of the Dockerfile and the pinned requirements: what the image is built from."""
    text = dockerfile_text() if dockerfile is None else dockerfile
    lines = requirements() if pins is None else pins
    digest = hashlib.sha256()
    digest.update(text.encode())
    digest.update(b"\0")
    digest.update("\n".join([f"python=={python_version()}", *lines]).encode())
    return digest.hexdigest()


@functools.cache
def default_image() -> str:
    """The tag this host's code expects: optforge-sandbox:<first 12 hex digits of the recipe hash>."""
    return f"{IMAGE_REPO}:{recipe_hash()[:12]}"


def image_labels() -> dict[str, str]:
    """The labels an image built for this host carries (the check compares against them)."""
    return {
        LABEL_SANDBOX: "1",
        LABEL_TORCH: _installed_version("torch") or "",
        LABEL_PYTHON: python_version(),
        LABEL_RECIPE: recipe_hash(),
    }


def host_package_dir(name: str) -> pathlib.Path:
    """Where the host's `optforge.<name>` package lives. Found by spec, not imported: the sandbox
    package must not import tasks (the import-layering contract)."""
    spec = importlib.util.find_spec(f"optforge.{name}")
    if spec is None or not spec.submodule_search_locations:
        raise SandboxUnavailable(f"cannot find the optforge.{name} package: reinstall optforge")
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def code_mounts() -> dict[str, dict[str, str]]:
    """The read-only bind mounts of the host's code, in the docker SDK's `volumes=` form."""
    return {
        str(host_package_dir(name)): {"bind": f"{CODE_ROOT}/optforge/{name}", "mode": "ro"}
        for name in MOUNTED_PACKAGES
    }


# -- diagnostics ----------------------------------------------------------------------------------


def engine_address() -> str:
    """The engine address the SDK will use ($DOCKER_HOST, else the default socket), for messages."""
    import docker

    return str(docker.utils.kwargs_from_env().get("base_url") or "unix:///var/run/docker.sock")


def engine_message(detail: str = "") -> str:
    reason = f" ({detail})" if detail else ""
    return (
        f"no Docker engine at {engine_address()}{reason}: start dockerd (sudo dockerd &) "
        "or install docker.io"
    )


def missing_image_message(image: str) -> str:
    tag = "" if image == default_image() else f" --tag {image}"
    return (
        f"image {image} is missing: run `optforge sandbox build --offline{tag}` "
        "(or without --offline where images can be pulled)"
    )


def connect(timeout: int = 60) -> Any:
    """A docker SDK client for the engine the environment names ($DOCKER_HOST, else the default
    socket); SandboxUnavailable with the fix when none answers. `timeout`: seconds per request."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise SandboxUnavailable(engine_message(_connection_reason(exc))) from None
    return client


def _connection_reason(exc: BaseException) -> str:
    """The short reason the SDK could not talk to the engine (its own message is a long repr)."""
    text = str(exc)
    for marker, reason in (
        ("FileNotFoundError", "no such socket"),
        ("PermissionError", "permission denied: use sudo or join the docker group"),
        ("ConnectionRefused", "connection refused"),
        ("Read timed out", "the engine did not answer in time"),
    ):
        if marker in text:
            return reason
    return _first_line(exc)[:160]


# A docker image reference: [registry[:port]/]name[/name...][:tag], lower-case name components.
_REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
)


def is_image_reference(text: str) -> bool:
    """Whether `text` is a valid image name[:tag] (checked before asking the engine)."""
    return bool(_REFERENCE.match(text))


def image_problems(client: Any, image: str) -> list[Problem]:
    """What is wrong with `image` for this host: missing, not ours, or another torch/Python."""
    import docker

    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        return [Problem("image", missing_image_message(image))]
    except docker.errors.DockerException as exc:
        return [Problem("engine", engine_message(_first_line(exc)))]
    rebuild = "rebuild it with `optforge sandbox build --offline`"
    if labels.get(LABEL_SANDBOX) != "1":
        return [Problem("image", f"image {image} is not an optforge sandbox image (no {LABEL_SANDBOX} label): {rebuild}")]
    problems = []
    expected = image_labels()
    for label, what in ((LABEL_TORCH, "torch"), (LABEL_PYTHON, "Python")):
        if labels.get(label) != expected[label]:
            problems.append(Problem(
                what.lower(),
                f"image {image} has {what} {labels.get(label)}, this host has {expected[label]}: {rebuild}",
            ))
    return problems


def smoke_problems(client: Any, image: str, user: str = "65534:65534") -> list[Problem]:
    """Start a container as the runner would (no network, read-only root, non-root uid, the code
    mounted read-only) and import the worker and the jobs in it."""
    import docker

    try:
        output = client.containers.run(
            image, [PYTHON, "-c", SMOKE_IMPORT], network_mode="none", read_only=True,
            volumes=code_mounts(), user=user, remove=True, stdout=True, stderr=True,
        )
    except docker.errors.ContainerError as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc.stderr)
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {exc.exit_status}"
        return [Problem("smoke", f"importing the worker in {image} failed ({last}): rebuild with `optforge sandbox build --offline`, and make the optforge source readable by uid {user.split(':')[0]}")]
    except docker.errors.ImageNotFound:
        return [Problem("image", missing_image_message(image))]
    except docker.errors.DockerException as exc:
        return [Problem("smoke", f"cannot start a container from {image} ({_first_line(exc)}): see `docker info` and the dockerd log")]
    expected = _installed_version("torch")
    found = output.decode(errors="replace").strip().splitlines()[-1:] if output else []
    if found != [expected]:
        return [Problem("smoke", f"the container imported torch {found[0] if found else '?'}, expected {expected}: rebuild with `optforge sandbox build --offline`")]
    return []


def check(client: Any, image: str | None = None, smoke: bool = True) -> list[Problem]:
    """Everything wrong with `image` (default: this host's) on the engine `client` talks to: the
    image and its labels, then (when those pass and `smoke`) a real container run. Empty: usable."""
    image = image or default_image()
    problems = image_problems(client, image)
    if smoke and not problems:
        problems = smoke_problems(client, image)
    return problems


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
