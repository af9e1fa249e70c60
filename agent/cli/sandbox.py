"""`optforge sandbox build` and `optforge sandbox check`: the Docker sandbox image (thin shells over
sandbox/image_build.py and sandbox/docker_image.py)."""

from __future__ import annotations

import argparse
import sys
import time

from optforge.agent.config import cache_dir
from optforge.sandbox import docker_image, image_build
from optforge.sandbox.errors import SandboxUnavailable


def add_commands(sub: argparse._SubParsersAction) -> None:
    sandbox = sub.add_parser("sandbox", help="build and check the Docker sandbox image")
    commands = sandbox.add_subparsers(dest="sandbox_command", required=True)

    build = commands.add_parser("build", help="build the sandbox image for this host's pinned dependencies")
    build.add_argument(
        "--offline", action="store_true",
        help=f"no image registry: debootstrap a Debian base ({image_build.DEBIAN_BASE}, needs root) "
             "and install from a wheelhouse the host's pip downloads",
    )
    build.add_argument("--base", help="base image (default: python:<x.y>-slim online, the Debian base offline)")
    build.add_argument("--tag", help="image tag (default: the one this host's code expects, "
                                     f"{docker_image.IMAGE_REPO}:<recipe hash>)")
    build.add_argument("--mirror", help="Debian mirror for the offline base (default: the host's apt source)")
    build.add_argument("--torch-index", help=f"online: extra pip index for torch (default: {image_build.DEFAULT_TORCH_INDEX})")
    build.set_defaults(handler=cmd_build)

    check = commands.add_parser("check", help="check the engine, the image and a real container run")
    check.add_argument("--image", help="image to check (default: the one this host's code expects)")
    check.set_defaults(handler=cmd_check)


def cmd_build(args: argparse.Namespace) -> int:
    for option, value in (("--tag", args.tag), ("--base", args.base)):
        if value is not None and not docker_image.is_image_reference(value):
            raise SandboxUnavailable(f"{option} {value!r} is not an image name[:tag] such as optforge-sandbox:mine")
    build_plan = image_build.plan(args.offline, args.base, args.tag, cache_dir(), args.mirror, args.torch_index)
    client = docker_image.connect(timeout=600)
    started = time.monotonic()
    try:
        tag = image_build.build(client, build_plan, _progress)
    except image_build.ImageBuildError as exc:
        print(f"optforge: error: {exc}", file=sys.stderr)
        return 1
    print(f"built {tag} in {time.monotonic() - started:.0f} s; check it with `optforge sandbox check`")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    image = args.image or docker_image.default_image()
    if not docker_image.is_image_reference(image):
        raise SandboxUnavailable(f"--image {image!r} is not an image name[:tag] such as optforge-sandbox:mine")
    try:
        client = docker_image.connect()
    except SandboxUnavailable as exc:
        _report("engine", str(exc), ok=False)
        return 1
    _report("engine", f"{docker_image.engine_address()} (Docker {client.version().get('Version', '?')})", ok=True)
    problems = docker_image.image_problems(client, image)
    if any(p.check in ("image", "engine") for p in problems):
        for problem in problems:
            _report(problem.check, problem.message, ok=False)
        return 1
    _report("image", image, ok=True)
    for problem in problems:
        _report(problem.check, problem.message, ok=False)
    if not problems:
        _report("labels", f"torch {docker_image.image_labels()[docker_image.LABEL_TORCH]}, Python {docker_image.python_version()}", ok=True)
    smoke = docker_image.smoke_problems(client, image)
    for problem in smoke:
        _report(problem.check, problem.message, ok=False)
    if not smoke:
        _report("smoke", "a container (no network, read-only root, uid 65534) imports the worker and the jobs", ok=True)
    return 0 if not problems and not smoke else 1


def _report(check: str, message: str, ok: bool) -> None:
    print(f"{'ok  ' if ok else 'FAIL'}  {check:<7} {message}")


def _progress(line: str) -> None:
    print(f"  {line}", flush=True)
