"""Ray for the ray-marked tests: skipped locally when the extra is missing, a failure under CI."""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

import pytest

INSTALL = "pip install -e '.[ray]' (or `make ray-deps`)"


def require_ray() -> ModuleType:
    if importlib.util.find_spec("ray") is None:
        message = f"Ray is not installed: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, so ray tests must run)", pytrace=False)
        pytest.skip(message, allow_module_level=True)
    import ray

    return ray
