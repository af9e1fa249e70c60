"""Scratch directories: fresh per job, wiped after it, and results read back without trusting them.

Layout of one worker's root (host-created, mode 0711 so an unprivileged job uid can traverse it)::

    <root>/job/     the job's scratch and working directory (owned by the job uid; wiped every job)
    <root>/out/     results copied out by the worker for the host (not writable by the job)
    <root>/worker.log   the worker's own stderr (warm-up output, crashes of the worker itself)
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

JOB_DIR = "job"
OUT_DIR = "out"
LOG_FILE = "worker.log"

# Shared world-writable places where an unisolated job could leave files for the next job.
SHARED_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def force_rmtree(path: Path) -> None:
    """Remove ``path`` even if the job chmod-ed its directories to 000 or left symlinks in it."""
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    os.chmod(path, 0o700)
    for dirpath, dirnames, _ in os.walk(path):  # top-down: fix a directory before entering it
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o700)
    shutil.rmtree(path)


def fresh_dir(path: Path, *, mode: int, owner: int | None = None) -> Path:
    """Wipe and recreate ``path``; ``owner`` (uid == gid) gets it when jobs run as another uid."""
    force_rmtree(path)
    path.mkdir(mode=mode)
    os.chmod(path, mode)  # mkdir's mode is filtered by the umask
    if owner is not None:
        os.chown(path, owner, owner)
    return path


def read_untrusted_file(path: Path, max_bytes: int) -> bytes:
    """Read a file the job wrote: must be a regular file (not a symlink to a host file, not a FIFO
    that would block us) and at most ``max_bytes``; raises ValueError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ValueError(f"{path.name}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(f"{path.name} is larger than {max_bytes} bytes")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(max_bytes + 1)[:max_bytes]
    finally:
        os.close(fd)


def remove_files_of_uid(uid: int, dirs: tuple[str, ...] = SHARED_TMP_DIRS) -> None:
    """Delete top-level entries owned by ``uid`` in shared temp dirs (unisolated mode only matters:
    under bubblewrap these dirs are not writable by the job)."""
    for top in dirs:
        try:
            names = os.listdir(top)
        except OSError:
            continue
        for name in names:
            full = Path(top, name)
            try:
                if full.lstat().st_uid == uid:
                    force_rmtree(full)
            except OSError:
                continue
