"""Choosing the isolation and building the worker's command line and environment.

bubblewrap gives each worker its own mount, pid, network, ipc and uts namespaces: no network, a
read-only view of the host with HOME, /tmp and /run replaced by empty tmpfs, hidden paths masked,
and only the worker's scratch root writable. See THREAT_MODEL.md for what this does and does not
cover.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from optforge.sandbox.errors import SandboxUnavailable, UnisolatedSandboxWarning

Isolation = Literal["bwrap", "none"]

logger = logging.getLogger("optforge.sandbox")

# Where a worker's scratch root appears inside bubblewrap (on the sandbox's private /tmp tmpfs).
INSIDE_ROOT = "/tmp/optforge-sandbox"
# Host directories replaced by an empty tmpfs inside bubblewrap (HOME is added at run time): they
# hold per-user secrets (~/.ssh, ~/.config, agent sockets in /tmp and /run/user).
MASKED_DIRS = ("/tmp", "/run")
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# As root (no user namespace) the worker keeps only what it needs: switching the job to its own uid
# (SETUID/SETGID), giving it the scratch dir (CHOWN), killing and cleaning up after it (KILL,
# DAC_OVERRIDE, FOWNER). Mounting, ptrace, raw sockets and the rest are gone for good.
ROOT_WORKER_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_KILL", "CAP_DAC_OVERRIDE",
                    "CAP_FOWNER")

UNISOLATED_MESSAGE = (
    "optforge sandbox: running candidate code WITHOUT bubblewrap: network and filesystem isolation "
    "are off (hidden_paths are not hidden; only rlimits, process groups, a clean environment and, as "
    "root, an unprivileged job uid remain). Install bubblewrap (apt-get install bubblewrap).")


def choose_isolation(requested: str, allow_unisolated: bool) -> Isolation:
    """Resolve "auto"/"bwrap"/"none"; raises SandboxUnavailable rather than silently degrading."""
    if requested not in ("auto", "bwrap", "none"):
        raise ValueError(f"isolation must be 'auto', 'bwrap' or 'none', got {requested!r}")
    if requested == "none":
        if not allow_unisolated:
            raise ValueError("isolation='none' runs candidates without network/filesystem "
                             "isolation; also pass allow_unisolated=True to confirm")
        return "none"
    bwrap = shutil.which("bwrap")
    problem = "bubblewrap (bwrap) is not on PATH" if bwrap is None else bwrap_problem(bwrap)
    if problem is None:
        return "bwrap"
    if requested == "auto" and allow_unisolated:
        return "none"
    raise SandboxUnavailable(
        f"{problem}: install bubblewrap (apt-get install bubblewrap), or accept running candidates "
        "without network/filesystem isolation (CLI: --allow-unisolated; API: allow_unisolated=True)")


def warn_unisolated(stacklevel: int = 2) -> None:
    """Warn (and log) on *every* call: warnings.warn would show it once per call site; a fresh
    registry keeps the user's filters ("ignore", "once") in charge but drops that deduplication."""
    frame = sys._getframe(stacklevel)
    warnings.warn_explicit(
        UNISOLATED_MESSAGE, UnisolatedSandboxWarning, frame.f_code.co_filename, frame.f_lineno,
        module=frame.f_globals.get("__name__"), registry={}, module_globals=frame.f_globals)
    logger.warning(UNISOLATED_MESSAGE)


@functools.lru_cache(maxsize=8)
def bwrap_problem(bwrap: str) -> str | None:
    """None when bubblewrap can build our kind of sandbox here, else why not (e.g. no user
    namespaces inside an unprivileged container)."""
    argv = [bwrap, *namespace_flags(), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--", sys.executable, "-c", ""]
    try:
        done = subprocess.run(argv, env={}, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap at {bwrap} does not work: {exc}"
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines() or ["no message"]
        return f"bubblewrap at {bwrap} does not work here ({reason[-1]})"
    return None


def namespace_flags() -> list[str]:
    if os.geteuid() != 0:
        return ["--unshare-all"]  # unprivileged: a user namespace is required and maps our uid
    # As root, a user namespace would map only uid 0, so the job could not switch to a uid of its
    # own; and root ignores RLIMIT_NPROC. So: every namespace but the user one, and few capabilities.
    flags = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
             "--unshare-cgroup-try", "--cap-drop", "ALL"]
    for cap in ROOT_WORKER_CAPS:
        flags += ["--cap-add", cap]
    return flags


def sandbox_env(home: str) -> dict[str, str]:
    """The worker's whole environment: an allow-list, never inherited (no API keys inside)."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), *SYSTEM_PATH]),
        "LANG": "C.UTF-8",
        "HOME": home,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",  # never write .pyc files into the source tree
    }
    extra = python_path_entries()
    if extra:  # what the host can import, the worker can (e.g. a checkout that is not installed)
        env["PYTHONPATH"] = os.pathsep.join(extra)
    return env


def _interpreter_dirs() -> list[str]:
    return sorted({os.path.realpath(p) for p in
                   (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)})


def _is_under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def python_path_entries() -> list[str]:
    """The host's sys.path entries that the worker's interpreter would not find by itself."""
    own = _interpreter_dirs()
    entries: list[str] = []
    for entry in sys.path:
        full = os.path.realpath(entry or os.getcwd())
        if os.path.exists(full) and full not in entries and not any(_is_under(full, p) for p in own):
            entries.append(full)
    return entries


def _paths_to_keep(data_dir: Path | None) -> list[str]:
    """Everything the worker must read: the interpreter, the venv, sys.path, our package, data."""
    paths = [*_interpreter_dirs(), os.path.dirname(os.path.realpath(sys.executable)),
             os.path.dirname(sys.executable), *sys.path, str(Path(__file__).resolve().parent.parent)]
    if data_dir is not None:
        paths.append(str(data_dir))
    found: list[str] = []
    for path in paths:
        for variant in (os.path.abspath(path or os.getcwd()), os.path.realpath(path or os.getcwd())):
            if os.path.exists(variant) and variant not in found:
                found.append(variant)
    return found


def _open_parents(masked: str, path: str, created: set[str]) -> list[str]:
    """Create the directories between a masked dir and a path bound under it as 0755: bubblewrap
    would create them 0700 (bubblewrap 0.8), untraversable for the unprivileged job uid."""
    args: list[str] = []
    parts = Path(path).relative_to(masked).parts[:-1]
    for depth in range(1, len(parts) + 1):
        directory = str(Path(masked, *parts[:depth]))
        if directory not in created:
            created.add(directory)
            args += ["--perms", "0755", "--dir", directory]
    return args


def bwrap_command(
    bwrap: str, worker_argv: Sequence[str], *, host_root: Path, home: str | None,
    data_dir: Path | None, hidden_paths: Sequence[Path], env: dict[str, str],
) -> list[str]:
    args = [bwrap, *namespace_flags(), "--die-with-parent", "--new-session",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    home = os.path.realpath(home) if home else None
    masked = [*MASKED_DIRS, *([home] if home and home != "/" and os.path.isdir(home) else [])]
    for directory in masked:
        args += ["--tmpfs", directory]  # mode 0755, owned by root: the job uid cannot write there
    created: set[str] = set()
    bound: list[str] = []
    for path in sorted(_paths_to_keep(data_dir), key=len):  # parents first; skip their children
        # Re-expose what lies *inside* a masked dir, never a masked dir itself (a script run from
        # /tmp puts /tmp on sys.path; binding it would undo the mask).
        inside = [m for m in masked if _is_under(path, m) and path != m]
        if inside and not any(_is_under(path, kept) for kept in bound):
            bound.append(path)
            args += [*_open_parents(inside[0], path, created), "--ro-bind", path, path]
    if data_dir is not None:
        args += ["--ro-bind", str(data_dir), str(data_dir)]
    args += ["--bind", str(host_root), INSIDE_ROOT]
    for hidden in hidden_paths:  # last, so that nothing above can re-expose them
        for variant in sorted({os.path.abspath(hidden), os.path.realpath(hidden)}):
            if os.path.isdir(variant):
                args += ["--tmpfs", variant]
            elif os.path.lexists(variant):
                args += ["--ro-bind", "/dev/null", variant]
    args += ["--clearenv"]
    for name, value in env.items():
        args += ["--setenv", name, value]
    return [*args, "--chdir", "/", "--", *worker_argv]
