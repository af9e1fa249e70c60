"""One warm worker in one container: the same worker as the process backend, spoken to over the
container's attached stdin/stdout.

The container runs ``python -m optforge.sandbox.worker`` under an init process. The host attaches
to its stdin and stdout before starting it (so the ready line cannot be missed) and reads the
stream's multiplexed frames. Results come back inline in the reply (base64): the container's
scratch is a tmpfs the host cannot see, and no host directory is writable from inside.
"""

from __future__ import annotations

import base64
import contextlib
import json
import select
import socket
import time
from typing import Any

from optforge.sandbox.docker_config import (
    DATA_DIR,
    SANDBOX_ROOT,
    ContainerSettings,
    container_config,
)
from optforge.sandbox.errors import SandboxError
from optforge.sandbox.host_worker import WorkerHandle
from optforge.sandbox.records import RunResult, Status

FRAME_HEADER = 8  # stream type (1 byte), 3 zero bytes, payload size (4 bytes, big-endian)
STDOUT_STREAM = 1


class AttachedStream:
    """Lines from a container's stdout over the engine's raw attach socket, with a deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._frames = bytearray()  # raw bytes, possibly ending in a partial frame
        self._lines = bytearray()  # demultiplexed stdout
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def readline(self, deadline: float) -> bytes | None:
        """The next stdout line without its newline; None at end of stream; TimeoutError."""
        while (end := self._lines.find(b"\n")) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not self._poller.poll(remaining * 1000):
                continue
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return None
            self._frames += chunk
            self._demultiplex()
        line = bytes(self._lines[:end])
        del self._lines[: end + 1]
        return line

    def _demultiplex(self) -> None:
        while len(self._frames) >= FRAME_HEADER:
            size = int.from_bytes(self._frames[4:FRAME_HEADER], "big")
            if len(self._frames) < FRAME_HEADER + size:
                return
            if self._frames[0] == STDOUT_STREAM:
                self._lines += self._frames[FRAME_HEADER:FRAME_HEADER + size]
            del self._frames[: FRAME_HEADER + size]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def raw_socket(attached: Any) -> socket.socket:
    """docker-py hands back a SocketIO (unix socket) or a socket; we want the socket itself."""
    return attached._sock if hasattr(attached, "_sock") else attached


class DockerWorker(WorkerHandle):
    """Starts its container at construction (returns at once; call wait_ready next)."""

    def __init__(self, api: Any, settings: ContainerSettings, slot: int, uid: int,
                 warmup: tuple[str, ...]) -> None:
        import docker

        self.healthy = True
        self._api = api
        self._errors = docker.errors
        create, host = container_config(settings, slot, uid)
        try:
            self.id: str = api.create_container(host_config=api.create_host_config(**host), **create)["Id"]
            self._stream = AttachedStream(raw_socket(api.attach_socket(
                self.id, params={"stdin": 1, "stdout": 1, "stderr": 0, "stream": 1})))
            api.start(self.id)
        except docker.errors.DockerException as exc:
            self.kill()
            raise SandboxError(f"cannot start a sandbox container from {settings.image}: {exc}") from None
        data_dir = DATA_DIR if settings.data_dir is not None else None
        self._send({"warmup": list(warmup), "data_dir": data_dir, "job_uid": None,
                    "root": SANDBOX_ROOT, "inline_results": True})

    def alive(self) -> bool:
        try:
            return bool(self._api.inspect_container(self.id)["State"]["Running"])
        except self._errors.DockerException:
            return False

    def log_tail(self, limit: int = 4000) -> str:
        try:
            logs = self._api.logs(self.id, stdout=False, stderr=True, tail=200)
        except self._errors.DockerException:
            return ""
        return bytes(logs)[-limit:].decode(errors="replace")

    def _send(self, message: dict[str, Any]) -> None:
        self._stream.send(json.dumps(message).encode() + b"\n")

    def _readline(self, deadline: float) -> bytes | None:
        line = self._stream.readline(deadline)
        if line is None:  # the worker is gone: let its container finish exiting, so that _death
            self._wait_exited()  # reads a final State (OOMKilled is set only once it has exited)
        return line

    def _wait_exited(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(self._errors.DockerException, OSError):
            self._api.wait(self.id, timeout=timeout)

    def _result(self, reply: dict[str, Any]) -> RunResult:
        result = super()._result(reply)
        if result.status == "oom" and self._state().get("OOMKilled"):
            # Docker's OOMKilled flag stays set for the container's whole life once anything in it
            # was OOM-killed: replace the container, so that the flag can only ever speak of the
            # job that was running when its worker died (see _death).
            self.healthy = False
        return result

    def _outbox(self, reply: dict[str, Any]) -> tuple[bytes, bytes]:
        return base64.b64decode(reply["result_b64"]), base64.b64decode(reply["meta_b64"])

    def _death(self) -> tuple[Status, str]:
        if self._oom_killed:
            return "oom", "the container's memory limit was exceeded (its worker was OOM-killed; replaced)"
        return "crashed", "the sandbox container died during the job (replaced)"

    def kill(self) -> None:
        """Remove the container, and with it every process a job started; safe to call twice."""
        self.healthy = False
        if getattr(self, "id", None) is None:
            return
        self._oom_killed = self._oom_killed or bool(self._state().get("OOMKilled", False))
        with contextlib.suppress(self._errors.DockerException):
            self._api.remove_container(self.id, force=True)

    def release(self) -> None:
        if hasattr(self, "_stream"):
            self._stream.close()

    def _state(self) -> dict[str, Any]:
        try:
            return dict(self._api.inspect_container(self.id)["State"])
        except self._errors.DockerException:
            return {}

    _oom_killed = False
