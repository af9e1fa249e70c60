"""The host's handle on one warm worker process: start it, send it jobs, kill it.

A worker is used by one thread at a time (the pool hands it out). A worker whose state is unknown
(died, stopped answering, interrupted mid-job, could not clean up) is marked unhealthy, killed, and
never reused.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from optforge.sandbox import procs
from optforge.sandbox.errors import SandboxError
from optforge.sandbox.isolation import (
    INSIDE_ROOT,
    Isolation,
    bwrap_command,
    nvidia_devices,
    sandbox_env,
)
from optforge.sandbox.jobchild import META_FILE, RESULT_FILE
from optforge.sandbox.records import Job, RunResult, Status
from optforge.sandbox.scratch import LOG_FILE, OUT_DIR, force_rmtree

# On top of the job's wall clock before the host gives up on a worker: the worker's own kill and
# cleanup take milliseconds, so a worker this late is itself stuck (stopped, or wedged in the kernel).
HOST_GRACE_SECONDS = 10.0
# Interpreter start + torch import (~2-5 s) + warm-up entries loading training data.
STARTUP_TIMEOUT_SECONDS = 600.0
# Base of the per-worker job uids when the host is root: far above human, system and subuid
# (100000+) ranges. Adding the worker's host pid (unique among live processes, < 2**22) gives every
# live worker its own uid, so each job has its own RLIMIT_NPROC count and can signal nothing else.
JOB_UID_BASE = 2_000_000_000

Popen = Callable[..., "subprocess.Popen[bytes]"]


@dataclass(frozen=True)
class WorkerSettings:
    isolation: Isolation
    bwrap: str | None
    warmup: tuple[str, ...]
    data_dir: Path | None
    hidden_paths: tuple[Path, ...]
    scratch_root: Path
    # The GPU this worker may use (a CUDA_VISIBLE_DEVICES value), or None: no GPU at all, neither
    # the NVIDIA device nodes nor a visible device.
    gpu: str | None = None


class LineReader:
    """Reads protocol lines from a pipe with a deadline (a buffered file object cannot time out)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)

    def readline(self, deadline: float) -> bytes | None:
        """The next line without its newline; None at end of file; TimeoutError after deadline."""
        while (end := self._buffer.find(b"\n")) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not self._poller.poll(remaining * 1000):
                continue
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line


class WorkerHandle:
    """The protocol side of a warm worker, whatever runs it (a local process tree, a container).

    Subclasses move JSON lines (`_send`, `_readline`), read the outbox of a successful job
    (`_outbox`), say why a worker vanished (`_death`), and kill it (`kill`)."""

    healthy: bool

    def alive(self) -> bool:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        """Free what only the thread holding the worker may free (pipes, sockets)."""

    def log_tail(self, limit: int = 4000) -> str:
        raise NotImplementedError

    def _send(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def _readline(self, deadline: float) -> bytes | None:
        raise NotImplementedError

    def _outbox(self, reply: dict[str, Any]) -> tuple[bytes, bytes]:
        """(result.safetensors, meta.json) of a job whose reply said "ok"."""
        raise NotImplementedError

    def _death(self) -> tuple[Status, str]:
        """Status and message for a worker that died mid-job (already killed by the caller)."""
        return "crashed", "the sandbox worker died during the job (replaced)"

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        try:
            line = self._readline(time.monotonic() + timeout)
            reply = json.loads(line) if line else {"error": "it exited"}
        except (TimeoutError, ValueError):
            reply = {"error": f"no ready message within {timeout:g} s"}
        if reply.get("ready"):
            return
        log = self.log_tail()
        self.kill()
        raise SandboxError(f"sandbox worker failed to start: {reply.get('error')}\n"
                           f"--- worker log (tail) ---\n{log}")

    def run(self, job: Job) -> RunResult:
        start = time.monotonic()
        try:
            self._send({"entry": job.entry, "payload": job.payload, "limits": asdict(job.limits)})
            line = self._readline(start + job.limits.wall_seconds + HOST_GRACE_SECONDS)
        except TimeoutError:
            self.kill()
            return _failure("timeout", f"wall-clock limit of {job.limits.wall_seconds:g} s exceeded "
                            "(the sandbox worker stopped responding and was replaced)", start)
        except OSError:  # broken pipe: the worker is gone
            line = None
        except BaseException:  # e.g. Ctrl-C: the worker is mid-job, never reuse it
            self.healthy = False
            raise
        if line is None:
            self.kill()
            return _failure(*self._death(), start)
        try:
            reply = json.loads(line)
            return self._result(reply)
        except (ValueError, KeyError, TypeError) as exc:
            self.healthy = False
            return _failure("sandbox_error", f"malformed reply from the sandbox worker: {exc}", start)

    def _result(self, reply: dict[str, Any]) -> RunResult:
        if not reply["clean"]:  # something of the job survived or scratch could not be wiped
            self.healthy = False
        status: Status = reply["status"]
        error: str | None = reply["error"]
        tensors: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        if status == "ok":
            try:
                tensors, meta = _decode_outbox(*self._outbox(reply))
            except Exception as exc:  # the bytes came from the job: treat them as untrusted
                status, error = "error", f"invalid result: {type(exc).__name__}: {exc}"
                tensors, meta = {}, {}
        return RunResult(status=status, tensors=tensors, meta=meta, error=error,
                         output_tail=reply["output_tail"], wall_seconds=reply["wall_seconds"])


def _decode_outbox(result: bytes, meta: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    from safetensors.torch import load  # a tensor format, never pickle

    decoded = json.loads(meta)
    if not isinstance(decoded, dict):
        raise ValueError("meta.json does not hold a JSON object")
    return load(result), decoded  # from bytes: no mmap of a reused file


class WorkerProcess(WorkerHandle):
    """A worker as a local process tree: bubblewrap around the interpreter, or (unisolated) bare."""

    def __init__(self, settings: WorkerSettings, popen: Popen = subprocess.Popen) -> None:
        """Start the process (returns at once; call wait_ready next). ``popen`` runs on the pool's
        long-lived spawner thread: the worker's parent-death signal is tied to that thread."""
        self.healthy = True
        self.root = Path(tempfile.mkdtemp(prefix="w", dir=settings.scratch_root))
        os.chmod(self.root, 0o711)  # an unprivileged job uid must traverse it to its scratch dir
        argv, env, inside_root = _command(settings, self.root)
        # 0600: the job uid may traverse the root dir but must not read the worker's own log.
        log_fd = os.open(self.root / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(log_fd, "wb") as log:
            self.proc = popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                              env=env, cwd="/", start_new_session=True)
        self.job_uid = JOB_UID_BASE + self.proc.pid if os.geteuid() == 0 else None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin: IO[bytes] = self.proc.stdin
        self._reader = LineReader(self.proc.stdout.fileno())
        data_dir = str(settings.data_dir) if settings.data_dir else None
        self._send({"warmup": list(settings.warmup), "data_dir": data_dir,
                    "job_uid": self.job_uid, "root": inside_root})

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return (self.root / LOG_FILE).read_bytes()[-limit:].decode(errors="replace")
        except OSError:
            return ""

    def _readline(self, deadline: float) -> bytes | None:
        return self._reader.readline(deadline)

    def _outbox(self, reply: dict[str, Any]) -> tuple[bytes, bytes]:
        out = self.root / OUT_DIR
        try:
            return (out / RESULT_FILE).read_bytes(), (out / META_FILE).read_bytes()
        finally:
            for name in (RESULT_FILE, META_FILE):
                (out / name).unlink(missing_ok=True)

    def _send(self, message: dict[str, Any]) -> None:
        self._stdin.write(json.dumps(message).encode() + b"\n")
        self._stdin.flush()

    def kill(self) -> None:
        """Kill the worker and everything it started; safe to call more than once."""
        self.healthy = False
        alive = self.proc.poll() is None  # only then is the pid still ours (unreaped at worst)
        procs.kill_tree(self.proc.pid if alive else None, include_root=True, reap=False,
                        uid=self.job_uid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            force_rmtree(self.root)

    def release(self) -> None:
        """Close our pipe ends. Only by the thread that holds the worker (kill() may come from
        close() in another thread; closing an fd under a reader could hand it a reused fd)."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _command(settings: WorkerSettings, root: Path) -> tuple[list[str], dict[str, str], str]:
    worker_argv = [sys.executable, "-m", "optforge.sandbox.worker"]
    if settings.isolation == "none":
        return worker_argv, sandbox_env(home=str(root), gpu=settings.gpu), str(root)
    assert settings.bwrap is not None
    home = os.environ.get("HOME")
    env = sandbox_env(home=home or INSIDE_ROOT, gpu=settings.gpu)
    argv = bwrap_command(settings.bwrap, worker_argv, host_root=root, home=home,
                         data_dir=settings.data_dir, hidden_paths=settings.hidden_paths, env=env,
                         devices=nvidia_devices() if settings.gpu is not None else ())
    return argv, env, INSIDE_ROOT


def _failure(status: Status, error: str, start: float) -> RunResult:
    return RunResult(status=status, tensors={}, meta={}, error=error, output_tail="",
                     wall_seconds=time.monotonic() - start)
