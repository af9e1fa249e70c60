"""Docker engine and sandbox image for the `docker`-marked tests, or a clear reason why not.

Locally a missing engine or image skips the test with the fix; under CI (the environment variable
CI is set, and .ci/docker_setup.sh has built the image) it fails the test instead: there the
tests must prove something, never pass by skipping.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from optforge.sandbox import SandboxUnavailable
from optforge.sandbox.docker_image import connect, default_image, image_problems


def unavailable(reason: str) -> None:
    """Skip (locally) or fail (under CI) with `reason`; never returns."""
    message = f"the Docker sandbox is unavailable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set, so docker tests must run)")
    pytest.skip(message)


def engine_with_image() -> Any:
    """A docker SDK client whose engine holds this host's sandbox image."""
    try:
        client = connect()
    except SandboxUnavailable as exc:
        unavailable(str(exc))
    problems = image_problems(client, default_image())
    if problems:
        client.close()
        unavailable(problems[0].message)
    return client
