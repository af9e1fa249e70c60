"""Process bookkeeping through Linux /proc and prctl: find, stop, kill and reap whole process trees.

Used inside the worker (kill everything a job started) and on the host (kill a whole worker).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(None, use_errno=True)


def prctl(option: int, value: int) -> None:
    if _libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, state letter) for every process visible in this /proc."""
    table: dict[int, tuple[int, str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:  # exited while we looked
            continue
        # The command name (field 2) may contain spaces and ')': parse after the last ')'.
        fields = data[data.rindex(b")") + 2 :].split()
        table[int(name)] = (int(fields[1]), fields[0].decode())
    return table


def descendants(root: int, table: dict[int, tuple[int, str]] | None = None) -> set[int]:
    """Live (non-zombie) descendants of ``root``, not including root."""
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, ()))
    return {pid for pid in found if table[pid][1] != "Z"}


def pids_of_uid(uid: int) -> set[int]:
    """Live processes whose real uid is ``uid`` (status, not the /proc dir owner: setuid processes
    are non-dumpable and their /proc entries belong to root)."""
    found: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                status = dict(line.split(":\t", 1) for line in f if ":\t" in line)
        except (OSError, ValueError):
            continue
        if int(status.get("Uid", "-1").split()[0]) == uid and not status.get("State", "").startswith("Z"):
            found.add(int(name))
    return found


def count_tasks_of_uid(uid: int) -> int:
    """Threads (tasks) owned by ``uid``: RLIMIT_NPROC counts threads, not just processes."""
    total = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as f:
                    status = dict(line.split(":\t", 1) for line in f if ":\t" in line)
                if int(status["Uid"].split()[0]) == uid:
                    total += int(status["Threads"])
            except (OSError, ValueError, KeyError):
                continue
    return total


def signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def reap_children() -> None:
    """Collect exit statuses of our dead children (orphans adopted as subreaper included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _victims(root: int | None, include_root: bool, uid: int | None) -> set[int]:
    table = process_table()
    victims = set() if root is None else descendants(root, table)
    if include_root and root in table and table[root][1] != "Z":
        victims.add(root)
    if uid is not None:
        victims |= pids_of_uid(uid)
    victims.discard(os.getpid())
    return victims


def kill_tree(
    root: int | None, *, include_root: bool, reap: bool, uid: int | None = None,
    timeout: float = 5.0,
) -> bool:
    """SIGKILL every descendant of ``root`` (and every process of ``uid``); True when none is left.

    Processes are first frozen with SIGSTOP until no new one appears, so a fork bomb cannot outrun
    us; orphans that re-parent away (when we are not their subreaper) were already frozen then.
    ``reap`` collects *all* our dead children: only for the worker, whose children are all job
    processes (on the host, waitpid(-1) would steal other subprocess.Popen objects' statuses).
    """
    end = time.monotonic() + timeout
    frozen: set[int] = set()
    while time.monotonic() < end:
        new = _victims(root, include_root, uid) - frozen
        if not new:
            break
        signal_all(new, signal.SIGSTOP)
        frozen |= new
    signal_all(frozen, signal.SIGKILL)
    while True:
        if reap:
            reap_children()
        left = _victims(root, include_root, uid)
        if not left:
            if reap:  # zombies still count against RLIMIT_NPROC until they are reaped
                reap_children()
            return True
        if time.monotonic() >= end:
            return False
        signal_all(left, signal.SIGKILL)
        time.sleep(0.001)
