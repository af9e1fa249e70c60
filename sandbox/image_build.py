"""Builds the sandbox image (`optforge sandbox build`), online or from local material only.

Online: `docker build` of image/Dockerfile on a pulled base (python:3.11-slim), pip installing the
pins from PyPI and the torch index. Offline (no image registry): the base is made by debootstrap
from the host's Debian mirror and `docker import`ed once; the pins come from a wheelhouse that the
host's own pip downloads (so it uses the host's indexes, find-links and constraints) and that is
cached by the pins, so a second build only re-runs docker's cached steps.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from optforge.sandbox import docker_image
from optforge.sandbox.errors import SandboxError, SandboxUnavailable

Log = Callable[[str], None]

DEBIAN_BASE = "optforge-debian-base:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_PYTHON = "3.11"  # bookworm's python3: the offline image can only have this one
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# Where the wheelhouse is unpacked in the build stage (the Dockerfile COPYs the context there).
CONTEXT_IN_IMAGE = "/tmp/optforge-build"
# glibc of the image's base (bookworm: 2.36). pip does not widen an explicit manylinux_2_X platform
# to older ones, so every compatible tag is listed.
IMAGE_GLIBC_MINOR = 36


class ImageBuildError(SandboxError):
    """A build step failed; the message is one line that says which and what to do."""


@dataclass(frozen=True)
class BuildPlan:
    offline: bool
    base: str
    tag: str
    cache: pathlib.Path  # wheelhouse and debootstrap package caches live under it
    mirror: str = DEFAULT_MIRROR
    torch_index: str = DEFAULT_TORCH_INDEX


def plan(offline: bool, base: str | None, tag: str | None, cache: pathlib.Path,
         mirror: str | None = None, torch_index: str | None = None) -> BuildPlan:
    """The build to run, with defaults filled in; SandboxUnavailable when it cannot work here."""
    python = docker_image.python_version()
    if offline and base is None and python != DEBIAN_PYTHON:
        raise SandboxUnavailable(
            f"the offline base is Debian {DEBIAN_SUITE} with Python {DEBIAN_PYTHON}, this host runs {python}: "
            f"build online (`optforge sandbox build --base python:{python}-slim`) or from a {python} host"
        )
    default_base = DEBIAN_BASE if offline else f"python:{python}-slim"
    return BuildPlan(
        offline=offline, base=base or default_base, tag=tag or docker_image.default_image(),
        cache=cache, mirror=mirror or debian_mirror(), torch_index=torch_index or DEFAULT_TORCH_INDEX,
    )


def build(client: Any, build_plan: BuildPlan, log: Log) -> str:
    """Build the image of `build_plan`, streaming progress lines to `log`; returns the tag."""
    pins = docker_image.requirements()
    if build_plan.offline:
        if build_plan.base == DEBIAN_BASE:
            ensure_debian_base(client, build_plan, log)
        wheels = wheelhouse(pins, build_plan.cache, log)
        pip_args = f"--no-index --find-links {CONTEXT_IN_IMAGE}/wheels"
    else:
        wheels, pip_args = None, f"--extra-index-url {build_plan.torch_index}"
    build_plan.cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build_plan.cache, prefix=".context-") as context:
        stage_context(pathlib.Path(context), pins, wheels)
        buildargs = {"BASE": build_plan.base, "PYTHON_VERSION": docker_image.python_version(), "PIP_ARGS": pip_args}
        docker_build(client, context, build_plan.tag, buildargs, log)
    return build_plan.tag


# -- the Debian base ------------------------------------------------------------------------------


def debian_mirror(apt_dir: pathlib.Path = pathlib.Path("/etc/apt")) -> str:
    """The host's Debian mirror for bookworm (deb822 .sources or sources.list), else deb.debian.org:
    a host with a mirror configured may reach nothing else."""
    for text in _apt_source_texts(apt_dir):
        for uri, suites in _apt_entries(text):
            if DEBIAN_SUITE in suites and "security" not in uri and "/debian" in uri:
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def _apt_source_texts(apt_dir: pathlib.Path) -> Iterable[str]:
    candidates = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.sources")),
                  *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in candidates:
        try:
            yield path.read_text()
        except OSError:
            continue


def _apt_entries(text: str) -> Iterable[tuple[str, list[str]]]:
    """(uri, suites) of each `deb` entry, from one-line and deb822 formats."""
    stanza: dict[str, str] = {}
    for raw in [*text.splitlines(), ""]:
        line = raw.strip()
        if line.startswith("deb "):  # one-line: deb [options] uri suite components...
            words = [w for w in line.split()[1:] if not w.startswith("[") and not w.endswith("]")]
            if len(words) >= 2:
                yield words[0], [words[1]]
        elif not line:  # a blank line ends a deb822 stanza
            if "deb" in stanza.get("types", "").split():
                for uri in stanza.get("uris", "").split():
                    yield uri, stanza.get("suites", "").split()
            stanza = {}
        elif not line.startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            stanza[key.strip().lower()] = value.strip()


def ensure_debian_base(client: Any, build_plan: BuildPlan, log: Log) -> None:
    """Make DEBIAN_BASE (debootstrap minbase + python3-venv, then `docker import`) unless present."""
    import docker

    try:
        client.images.get(DEBIAN_BASE)
        log(f"base image {DEBIAN_BASE} is present")
        return
    except docker.errors.ImageNotFound:
        pass
    if os.geteuid() != 0:
        raise SandboxUnavailable(f"making the offline base {DEBIAN_BASE} runs debootstrap, which needs root: run `sudo optforge sandbox build --offline`")
    if shutil.which("debootstrap") is None:
        raise SandboxUnavailable("debootstrap is not installed: sudo apt-get install debootstrap")
    debs = build_plan.cache / "sandbox-debs"
    debs.mkdir(parents=True, exist_ok=True)
    # /var/tmp, not /tmp: a tmpfs /tmp may be small or noexec, and debootstrap runs binaries in it.
    work = pathlib.Path(tempfile.mkdtemp(dir="/var/tmp", prefix="optforge-debootstrap-"))
    root = work / "root"
    try:
        log(f"debootstrap {DEBIAN_SUITE} from {build_plan.mirror} (minbase + python3-venv) ...")
        _run_streamed(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv",
             f"--cache-dir={debs}", DEBIAN_SUITE, str(root), build_plan.mirror],
            log, f"debootstrap of {DEBIAN_SUITE} from {build_plan.mirror} failed: check that the mirror answers (apt-get update) or pass --mirror",
        )
        log(f"importing the root file system as {DEBIAN_BASE} ...")
        import_root(client, root)
    finally:
        _remove_chroot(work)


def mounts_under(directory: pathlib.Path) -> list[str]:
    """Mount points inside `directory`, deepest first (from /proc/self/mounts)."""
    prefix = str(directory.resolve()) + "/"
    try:
        lines = pathlib.Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1].replace("\\040", " ") for line in lines if len(line.split()) > 1]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _remove_chroot(work: pathlib.Path) -> None:
    """Delete the debootstrap tree, but never through a mount an interrupted debootstrap left in it
    (/proc, /sys, a bind of /dev): deleting through those would delete the host's own files."""
    for point in mounts_under(work):
        subprocess.run(["umount", "--lazy", point], check=False)
    left = mounts_under(work)
    if left:
        raise ImageBuildError(f"{work} still has mounts ({', '.join(left)}): unmount them, then delete it")
    shutil.rmtree(work, ignore_errors=True)


def import_root(client: Any, root: pathlib.Path) -> None:
    """`tar -C root -c . | docker import` through the SDK, without the package caches."""
    tar = subprocess.Popen(
        ["tar", "-C", str(root), "--numeric-owner", "--exclude=./var/cache/apt/archives/*.deb",
         "--exclude=./var/lib/apt/lists/*", "-c", "."],
        stdout=subprocess.PIPE,
    )
    repository, _, tag = DEBIAN_BASE.partition(":")
    try:
        client.api.import_image(
            src=tar.stdout, repository=repository, tag=tag, stream_src=True,
            changes=["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     "ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]'],
        )
    finally:
        if tar.stdout is not None:
            tar.stdout.close()
        status = tar.wait()
    if status != 0:
        raise ImageBuildError(f"tar of the debootstrap root failed (exit {status}): check free disk space under /var/tmp")


# -- wheels and the build context -----------------------------------------------------------------


def image_platforms(machine: str | None = None) -> list[str]:
    """pip --platform tags of wheels that run on the image (bookworm's glibc, the engine's arch)."""
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine or platform.machine(), machine or platform.machine())
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(IMAGE_GLIBC_MINOR, 16, -1)]
    return [*tags, f"manylinux2014_{arch}", f"linux_{arch}"]


def wheelhouse_dir(pins: list[str], cache: pathlib.Path) -> pathlib.Path:
    """Where the wheelhouse of `pins` is cached: keyed by the pins, the Python and the platforms."""
    key_text = "\n".join([docker_image.python_version(), *image_platforms(), *pins])
    return cache / "sandbox-wheels" / hashlib.sha256(key_text.encode()).hexdigest()[:16]


def wheelhouse(pins: list[str], cache: pathlib.Path, log: Log) -> pathlib.Path:
    """A directory with a wheel for every pin, downloaded once per set of pins by the host's pip."""
    python = docker_image.python_version()
    platforms = image_platforms()
    directory = wheelhouse_dir(pins, cache)
    if directory.is_dir():
        log(f"wheelhouse {directory} (cached)")
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=directory.parent, prefix=".download-"))
    try:
        (staging / "requirements.txt").write_text("\n".join(pins) + "\n")
        log(f"downloading {len(pins)} pinned wheels with the host's pip into {directory} ...")
        command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
                   "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                   "--abi", "cp" + python.replace(".", ""), "--dest", str(staging),
                   "-r", str(staging / "requirements.txt")]
        for tag in platforms:
            command += ["--platform", tag]
        _run_streamed(command, log, "pip download of the pinned wheels failed: check the pip configuration (pip config list) and that the indexes answer")
        staging.rename(directory)  # atomic: a half-downloaded wheelhouse is never reused
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def stage_context(context: pathlib.Path, pins: list[str], wheels: pathlib.Path | None) -> None:
    """The docker build context: the Dockerfile, requirements.txt and (offline) wheels/."""
    (context / "Dockerfile").write_text(docker_image.dockerfile_text())
    (context / "requirements.txt").write_text("\n".join(pins) + "\n")
    target = context / "wheels"
    target.mkdir()
    for wheel in sorted(wheels.glob("*.whl")) if wheels else []:
        try:
            os.link(wheel, target / wheel.name)  # same file system as the cache: no copy
        except OSError:
            shutil.copy2(wheel, target / wheel.name)


def docker_build(client: Any, context: str, tag: str, buildargs: dict[str, str], log: Log) -> None:
    """`docker build` through the SDK, streaming its output; one ImageBuildError line on failure."""
    import docker

    labels = docker_image.image_labels()
    log(f"docker build -t {tag} (BASE={buildargs['BASE']}) ...")
    try:
        # A long timeout: pip installing torch prints nothing for minutes on a loaded machine.
        for chunk in client.api.build(path=context, tag=tag, buildargs=buildargs, labels=labels,
                                      rm=True, forcerm=True, decode=True, timeout=3600):
            if "error" in chunk:
                raise ImageBuildError(_build_failure(str(chunk["error"]), buildargs["BASE"]))
            for line in str(chunk.get("stream", "")).splitlines():
                if line.strip():
                    log(line.rstrip())
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"docker build failed: {_last_line(str(exc))}: see `docker info` and the dockerd log") from None


# How the engine words a base image it cannot pull (no registry, no DNS, unknown name or tag).
_PULL_FAILURES = ("registry", "pull access denied", "manifest unknown", "not found: manifest", "dial tcp")


def _build_failure(error: str, base: str) -> str:
    """One line for a failed `docker build`: a base that cannot be pulled gets the offline fix."""
    detail = _last_line(error)
    if any(marker in error for marker in _PULL_FAILURES):
        return (f"docker build failed: the base image {base} cannot be pulled ({detail}): "
                "build without a registry with `optforge sandbox build --offline`")
    return f"docker build failed: {detail} (full output above)"


def _run_streamed(command: list[str], log: Log, failure: str) -> None:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip():
            log(line.rstrip())
    if process.wait() != 0:
        raise ImageBuildError(f"{failure} (exit {process.returncode}; output above)")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no detail"
