"""The warm worker, ``python -m optforge.sandbox.worker``: one per pool slot, inside bubblewrap.

It imports torch and runs the warm-up entries once, then runs each job in a child forked from
itself (jobchild.py), so a job costs milliseconds instead of an interpreter start plus torch import.

Protocol: JSON lines on the worker's *original* stdin/stdout; fd 1 is pointed at the log right away
so that nothing printed by warm-up code, libraries or jobs can reach the host channel.
  host -> worker, once:    {"warmup": [str], "data_dir": str|null, "job_uid": int|null, "root": str,
                            "inline_results": bool (optional, default false)}
  worker -> host, once:    {"ready": true} | {"ready": false, "error": str}
  host -> worker, per job: {"entry": str, "payload": {...}, "limits": {...}}
  worker -> host, per job: {"status", "error", "output_tail", "wall_seconds", "clean"}
When status is "ok", <root>/out/ holds result.safetensors and meta.json for the host to read; with
"inline_results" (a Docker container, whose scratch is a tmpfs the host cannot see) the reply
carries them instead, base64-encoded, as "result_b64" and "meta_b64".
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import resource
import select
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from optforge.sandbox import jobchild, procs
from optforge.sandbox.scratch import (
    JOB_DIR,
    OUT_DIR,
    force_rmtree,
    fresh_dir,
    read_untrusted_file,
    remove_files_of_uid,
)

MB = 1024 * 1024
MAX_ERROR_CHARS = 2000  # one line of feedback, not a dump
# A job SIGKILLed/SIGSEGVed with a peak RSS this close to its address-space cap most likely ran out
# of memory (allocation failures in C code often end in a segfault rather than an exception).
OOM_RSS_FRACTION = 0.8


def main() -> int:
    proto_in, proto_out = _take_protocol_channel()
    procs.prctl(procs.PR_SET_CHILD_SUBREAPER, 1)  # orphans of a job (setsid daemons) come back to us
    # Non-dumpable: a job running as our own uid (non-root hosts) can neither ptrace us nor open
    # /proc/<worker>/fd/* to write forged replies into the host channel. Jobs inherit it; harmless.
    procs.prctl(procs.PR_SET_DUMPABLE, 0)
    procs.prctl(procs.PR_SET_PDEATHSIG, signal.SIGKILL)  # if the host dies without cleaning up
    if sys.path and sys.path[0] == os.getcwd():
        del sys.path[0]  # `python -m` put the cwd first; imports must not depend on it
    first = proto_in.readline()
    if not first:  # the host went away before configuring us
        return 0
    config = json.loads(first)
    try:
        warm_up(config)
    except BaseException as exc:
        traceback.print_exc()
        _send(proto_out, {"ready": False, "error": jobchild.first_error_line(exc)})
        return 1
    _send(proto_out, {"ready": True})
    for line in proto_in:
        try:
            reply = run_job(json.loads(line), config)
        except Exception as exc:  # our bug: report it as data, and let the host replace us
            traceback.print_exc()
            reply = _reply("sandbox_error", f"sandbox worker: {jobchild.first_error_line(exc)}",
                           clean=False)
        _send(proto_out, reply)
    return 0


def _take_protocol_channel() -> tuple[IO[bytes], IO[bytes]]:
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)  # stray prints go to the log (stderr), never into the protocol
    return proto_in, proto_out


def _send(out: IO[bytes], message: dict[str, Any]) -> None:
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()


def warm_up(config: dict[str, Any]) -> None:
    import safetensors.torch  # noqa: F401  # imported before any fork: a job may not read site-packages
    import torch

    # One thread before anything runs: forking a process whose OpenMP pool has several threads can
    # deadlock the child (libgomp is not fork-safe); one thread per worker is also the fair share.
    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # already started by a warm-up import; harmless
        torch.set_num_interop_threads(1)
    data_dir = Path(config["data_dir"]) if config["data_dir"] else None
    for spec in config["warmup"]:
        resolve(spec)(data_dir)


def resolve(spec: str) -> Any:
    module_name, _, name = spec.partition(":")
    function = getattr(importlib.import_module(module_name), name)
    if not callable(function):
        raise TypeError(f"{spec} is not callable")
    return function


def _reply(status: str, error: str | None, *, tail: str = "", seconds: float = 0.0,
           clean: bool = True) -> dict[str, Any]:
    return {"status": status, "error": error, "output_tail": tail, "wall_seconds": seconds,
            "clean": clean}


def run_job(request: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    limits, root, uid = request["limits"], Path(config["root"]), config["job_uid"]
    out = fresh_dir(root / OUT_DIR, mode=0o700)
    scratch = fresh_dir(root / JOB_DIR, mode=0o700, owner=uid)
    try:
        entry = resolve(request["entry"])
    except Exception as exc:
        return _reply("sandbox_error", f"cannot load entry {request['entry']!r}: "
                      f"{jobchild.first_error_line(exc)}")
    # Without a uid of its own, the job shares RLIMIT_NPROC's count with this uid's tasks.
    nproc_base = 0 if uid is not None else procs.count_tasks_of_uid(os.getuid())
    # Only a container's worker has a memory cgroup of its own, so only there does a rise in its
    # OOM-kill counter speak of this job (elsewhere it may be the whole host's, or absent).
    in_container = bool(config.get("inline_results"))
    oom_kills_before = cgroup_oom_kills() if in_container else 0
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        jobchild.child_main(entry, request["payload"], limits, scratch, write_fd, uid, nproc_base)
    os.close(write_fd)
    outcome = supervise(pid, read_fd, limits)
    clean = procs.kill_tree(os.getpid(), include_root=False, reap=True)
    outcome.drain(read_fd)
    os.close(read_fd)
    outcome.cgroup_oom_kill = in_container and cgroup_oom_kills() > oom_kills_before
    status, error = classify(outcome, scratch, out, limits)
    # In a container the job shares our uid; it may still have left files in /dev/shm.
    sweep_uid = uid if uid is not None else (os.getuid() if in_container else None)
    try:
        force_rmtree(scratch)
        if sweep_uid is not None:
            remove_files_of_uid(sweep_uid)
    except OSError:
        clean = False
    reply = _reply(status, error, tail=outcome.tail_text(), seconds=outcome.seconds, clean=clean)
    if status == "ok" and config.get("inline_results"):
        reply.update(_inline_outbox(out))
    return reply


def _inline_outbox(out: Path) -> dict[str, str]:
    """Move the outbox into the reply (and out of the scratch tmpfs, which counts as memory)."""
    files = {"result_b64": jobchild.RESULT_FILE, "meta_b64": jobchild.META_FILE}
    reply = {}
    for key, name in files.items():
        reply[key] = base64.b64encode((out / name).read_bytes()).decode("ascii")
        (out / name).unlink()
    return reply


# cgroup v2 and v1 files whose "oom_kill N" line counts the kernel's OOM kills in our memory cgroup
# (a container's memory limit): a job that lost a process while it rose ran out of memory.
CGROUP_OOM_FILES = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")


def cgroup_oom_kills() -> int:
    for name in CGROUP_OOM_FILES:
        try:
            with open(name) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


@dataclass
class Outcome:
    """How the job process ended, plus the tail of everything it printed."""

    tail_cap: int
    tail: bytearray = field(default_factory=bytearray)
    exit_code: int = 0  # negative: killed by that signal
    max_rss_bytes: int = 0
    timed_out: bool = False
    seconds: float = 0.0
    cgroup_oom_kill: bool = False  # the kernel OOM-killed something in our cgroup during the job

    def read_from(self, fd: int) -> bool:
        """Append what is available on ``fd``; False at end of file."""
        chunk = os.read(fd, 1 << 16)
        self.tail += chunk
        if len(self.tail) > self.tail_cap:
            del self.tail[: len(self.tail) - self.tail_cap]
        return bool(chunk)

    def drain(self, fd: int) -> None:
        os.set_blocking(fd, False)
        try:
            while self.read_from(fd):
                pass
        except BlockingIOError:  # a writer survived the kill; do not wait for it
            pass

    def tail_text(self) -> str:
        return self.tail.decode(errors="replace")


def supervise(pid: int, read_fd: int, limits: dict[str, Any]) -> Outcome:
    """Collect output until the child exits or the wall-clock limit passes (then kill its group)."""
    outcome = Outcome(tail_cap=limits["max_output_bytes"])
    start = time.monotonic()
    deadline = start + limits["wall_seconds"]
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    pidfd = _pidfd_open(pid)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)  # readable when the child exits: no polling loop
    while True:
        waited, status, usage = os.wait4(pid, os.WNOHANG)
        if waited == pid:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            outcome.timed_out = True
            _kill_group(pid)
            _, status, usage = os.wait4(pid, 0)
            break
        timeout_ms = remaining * 1000 if pidfd is not None else min(remaining * 1000, 10)
        for fd, _ in poller.poll(timeout_ms):
            if fd == read_fd and not outcome.read_from(read_fd):
                poller.unregister(read_fd)
    if pidfd is not None:
        os.close(pidfd)
    outcome.seconds = time.monotonic() - start
    outcome.exit_code = os.waitstatus_to_exitcode(status)
    outcome.max_rss_bytes = usage.ru_maxrss * 1024  # Linux reports KiB
    return outcome


def _pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # Linux < 5.3: fall back to polling every 10 ms
        return None


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):  # the group exists once the child has called setsid
        with contextlib.suppress(OSError):
            kill(pid, signal.SIGKILL)


def classify(outcome: Outcome, scratch: Path, out: Path, limits: dict[str, Any]) -> tuple[str, str | None]:
    code = outcome.exit_code
    if outcome.timed_out:
        return "timeout", f"wall-clock limit of {limits['wall_seconds']:g} s exceeded"
    if code == jobchild.EXIT_OK:
        if not os.path.lexists(scratch / jobchild.RESULT_FILE):
            return "crashed", "job exited with code 0 without a result"
        try:
            collect(scratch, out, limits)
        except ValueError as exc:
            return "error", f"invalid result: {exc}"
        return "ok", None
    if code == jobchild.EXIT_NOT_CONFINED:
        return "sandbox_error", "could not confine the job: " + outcome.tail_text().strip()[-500:]
    if outcome.cgroup_oom_kill:
        # Before the job's own report: when the kernel killed one of its processes (a forked child,
        # say) the job often fails with whatever error that caused, but the cause was memory.
        return "oom", "the kernel's OOM killer killed a process of the job (the container's memory limit)"
    if code == jobchild.EXIT_FAILED and (report := _read_report(scratch)) is not None:
        return report
    if _looks_oom(outcome, limits):
        return "oom", f"memory limit of {limits['memory_mb']} MB exceeded"
    if code < 0:
        return "crashed", f"job killed by signal {signal.Signals(-code).name}"
    return "crashed", f"job exited with code {code} without a result"


def _read_report(scratch: Path) -> tuple[str, str] | None:
    try:
        report = json.loads(read_untrusted_file(scratch / jobchild.ERROR_FILE, 1 << 16))
        status, error = report["status"], report["error"]
    except (ValueError, KeyError, TypeError):
        return None
    if status not in ("error", "oom") or not isinstance(error, str):
        return None
    lines = error.strip().splitlines()
    return status, (lines[0] if lines else "unknown error")[:MAX_ERROR_CHARS]


def _looks_oom(outcome: Outcome, limits: dict[str, Any]) -> bool:
    """Best effort: an allocation-failure message in the output, or a hard crash at high memory."""
    if outcome.exit_code != 0 and any(m in outcome.tail_text() for m in jobchild.OOM_MARKERS):
        return True
    hard = {-signal.SIGKILL, -signal.SIGSEGV, -signal.SIGBUS, -signal.SIGABRT}
    return outcome.exit_code in hard and (
        outcome.max_rss_bytes >= OOM_RSS_FRACTION * limits["memory_mb"] * MB)


def collect(scratch: Path, out: Path, limits: dict[str, Any]) -> None:
    """Copy the job's result files into the worker-owned outbox (as bytes: a symlink planted by the
    job must not make the host read a file of its choosing)."""
    cap = limits["max_file_mb"] * MB
    meta = read_untrusted_file(scratch / jobchild.META_FILE, cap)
    try:
        if not isinstance(json.loads(meta), dict):
            raise ValueError("meta.json does not hold a JSON object")
    except json.JSONDecodeError as exc:
        raise ValueError(f"meta.json is not JSON: {exc}") from None
    (out / jobchild.META_FILE).write_bytes(meta)
    (out / jobchild.RESULT_FILE).write_bytes(read_untrusted_file(scratch / jobchild.RESULT_FILE, cap))


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashing worker must not dump its memory
    sys.exit(main())
