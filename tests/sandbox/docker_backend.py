"""What docker-marked tests need: an engine and this host's sandbox image.

A missing engine or image FAILS with the fix instead of skipping: these tests run only when asked
for (`-m docker`, as CI does after .ci/docker_setup.sh), and then they must prove something.
"""

from __future__ import annotations

import pytest

from optforge.sandbox import SandboxUnavailable, docker_image


def require_docker_image() -> None:
    try:
        engine = docker_image.connect()
    except SandboxUnavailable as exc:
        pytest.fail(str(exc))
    try:
        problems = docker_image.image_problems(engine, docker_image.default_image())
    finally:
        engine.close()
    if problems:
        pytest.fail("; ".join(p.message for p in problems))
