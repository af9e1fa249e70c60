"""The forked job process: confine it, call the trusted entry, write the result files, exit.

Runs only inside the worker, in a child forked from the warm interpreter (torch and the warm-up
data are already in memory). Nothing here may return to the worker's code: every path ends in
os._exit, so the worker's protocol loop, atexit hooks and buffers never run twice.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from optforge.sandbox import procs

RESULT_FILE = "result.safetensors"
META_FILE = "meta.json"
ERROR_FILE = "error.json"

EXIT_OK = 0
EXIT_FAILED = 1  # the entry raised; ERROR_FILE says why
EXIT_NOT_CONFINED = 3  # confinement failed; the entry never ran

# Phrases allocators print when they run out of (address) space: MemoryError, torch's
# DefaultCPUAllocator ("can't allocate memory"), C++ std::bad_alloc, glibc/OS strerror.
OOM_MARKERS = ("MemoryError", "can't allocate memory", "std::bad_alloc", "Cannot allocate memory",
               "out of memory")

Entry = Callable[[dict[str, Any], Path], Any]


def child_main(
    entry: Entry, payload: dict[str, Any], limits: dict[str, Any], scratch: Path, out_fd: int,
    job_uid: int | None, nproc_base: int,
) -> NoReturn:
    try:
        confine(limits, scratch, out_fd, job_uid, nproc_base)
    except BaseException as exc:  # never run untrusted code half-confined
        os.write(2, f"sandbox: could not confine the job: {exc!r}\n".encode())
        os._exit(EXIT_NOT_CONFINED)
    code = run_entry(entry, payload, scratch)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def memory_limit() -> int:
    """The rlimit that caps a job's memory: its address space, except in a GPU worker (one with a
    device in CUDA_VISIBLE_DEVICES), where CUDA reserves tens of GB of address space it never uses
    and fails to start under RLIMIT_AS; there the data segment (RLIMIT_DATA: private writable
    mappings, the heap included, not CUDA's PROT_NONE reservations) is capped instead."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "").strip():
        return resource.RLIMIT_DATA
    return resource.RLIMIT_AS


def confine(limits: dict[str, Any], scratch: Path, out_fd: int, job_uid: int | None,
            nproc_base: int) -> None:
    os.setsid()  # own process group and session: a timeout kills the group
    _first_for_the_oom_killer()
    procs.prctl(procs.PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the worker
    _redirect_output(out_fd)
    mb = 1024 * 1024
    _set_limit(memory_limit(), limits["memory_mb"] * mb)
    _set_limit(resource.RLIMIT_FSIZE, limits["max_file_mb"] * mb)
    _set_limit(resource.RLIMIT_CORE, 0)
    # RLIMIT_NPROC counts every task of the real uid, so add what that uid already runs.
    _set_limit(resource.RLIMIT_NPROC, nproc_base + limits["max_processes"])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes raise EFBIG (feedback) not die
    if job_uid is not None:
        # Root ignores RLIMIT_NPROC and could undo all of the above: drop to a uid of our own.
        os.setgroups([])
        os.setgid(job_uid)
        os.setuid(job_uid)
    procs.prctl(procs.PR_SET_NO_NEW_PRIVS, 1)  # setuid binaries cannot give privileges back
    os.chdir(scratch)
    os.environ["HOME"] = os.environ["TMPDIR"] = str(scratch)
    tempfile.tempdir = None  # forget a temp dir cached by the worker


def _first_for_the_oom_killer() -> None:
    """oom_score_adj 1000 (inherited by everything the job forks): when a container's memory limit
    is hit, the kernel kills the job's processes, never the warm worker that reports on them.
    Raising it needs no privilege; best effort, since a job is confined without it."""
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")


def _redirect_output(out_fd: int) -> None:
    """stdin from /dev/null, stdout/stderr to the worker's tail pipe; close every other fd so the
    job can never reach the host protocol channel."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)  # keep the lines printed before a kill


def _set_limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


def run_entry(entry: Entry, payload: dict[str, Any], scratch: Path) -> int:
    try:
        result = entry(payload, scratch)
        write_results(result)
        return EXIT_OK
    except BaseException as exc:  # SystemExit from the candidate is a failure too
        traceback.print_exc()
        report = {"status": "oom" if is_oom(exc) else "error", "error": first_error_line(exc)}
        # Out of memory or disk, this may fail: the worker then falls back to the output tail.
        with contextlib.suppress(Exception):
            Path(ERROR_FILE).write_text(json.dumps(report))
        return EXIT_FAILED


def write_results(result: Any) -> None:
    """Tensors as safetensors (a data format: the host never unpickles job output), meta as JSON."""
    import torch
    from safetensors.torch import save_file

    if not (isinstance(result, tuple) and len(result) == 2
            and isinstance(result[0], dict) and isinstance(result[1], dict)):
        raise TypeError("the entry must return (dict[str, torch.Tensor], dict[str, Any])")
    tensors, meta = result
    clean = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise TypeError(f"result tensor {name!r} must be a torch.Tensor under a str name")
        # clone: safetensors refuses views that share storage
        clean[name] = value.detach().to("cpu").contiguous().clone()
    save_file(clean, RESULT_FILE)
    Path(META_FILE).write_text(json.dumps(meta))


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or any(m in str(exc) for m in OOM_MARKERS)


def first_error_line(exc: BaseException) -> str:
    """"ZeroDivisionError: division by zero (line 7 of candidate)" - one line of LLM feedback."""
    message = exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc)
    lines = message.strip().splitlines()
    text = type(exc).__name__ + (f": {lines[0]}" if lines else "")
    line = candidate_line(exc)
    return text if line is None else f"{text} (line {line} of candidate)"


def candidate_line(exc: BaseException) -> int | None:
    """Innermost line in candidate code ("<candidate...>" filename), also through chained causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SyntaxError) and (current.filename or "").startswith("<candidate"):
            return current.lineno
        frames = traceback.extract_tb(current.__traceback__)
        lines = [f.lineno for f in frames if f.filename.startswith("<candidate")]
        if lines and lines[-1] is not None:
            return lines[-1]
        current = current.__cause__ or current.__context__
    return None
