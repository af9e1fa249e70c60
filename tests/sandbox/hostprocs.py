"""Looking at host processes from the tests (independent of the code under test where it matters)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

from optforge.sandbox.host_worker import JOB_UID_BASE
from optforge.sandbox.procs import descendants


def new_token() -> str:
    """A `sleep` argument no other process on the machine has: `sleep 1000.<digits>`."""
    return f"1000.{random.randrange(10**12):012d}"


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [part.decode(errors="replace") for part in f.read().split(b"\0") if part]
    except OSError:
        return []


def _status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def live_pids_with_arg(token: str) -> list[int]:
    return [pid for pid in all_pids() if token in cmdline(pid) and not is_zombie(pid)]


def job_uid_processes() -> list[int]:
    """Live processes started by this test process that run as one of the sandbox's per-worker job
    uids (root hosts). Other programs on the machine may be using a sandbox at the same time."""
    found = []
    for pid in descendants(os.getpid()):
        status = _status(pid)
        uid = int(status.get("Uid", "0").split()[0])
        if uid >= JOB_UID_BASE and not is_zombie(pid):
            found.append(pid)
    return found


def is_zombie(pid: int) -> bool:
    return _status(pid).get("State", "Z").startswith("Z")


def parent(pid: int) -> int:
    return int(_status(pid).get("PPid", "0"))


def worker_ancestor(pid: int) -> int:
    """The python worker process (not the bwrap wrapper) that runs the job owning ``pid``: the
    topmost one, since the forked job process shows the worker's command line too."""
    found = None
    while pid > 1:
        argv = cmdline(pid)
        if argv and "optforge.sandbox.worker" in argv and "bwrap" not in os.path.basename(argv[0]):
            found = pid
        pid = parent(pid)
    if found is None:
        raise LookupError("no sandbox worker above this process")
    return found


def start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()[19].decode()


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
