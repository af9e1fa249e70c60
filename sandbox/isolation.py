"""Choosing the isolation and building the worker's command line and environment.

bubblewrap gives each worker its own mount, pid, network, ipc and uts namespaces: no network, a
read-only *allow-list* of the host (the operating system's directories, the interpreter, its
packages, our package and the data dir; nothing else) with /tmp, /run and HOME replaced by empty
tmpfs, held-out data masked wherever a copy is, and only the worker's scratch root writable. See
THREAT_MODEL.md for what this does and does not cover.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from optforge.sandbox import heldout
from optforge.sandbox.errors import SandboxUnavailable, UnisolatedSandboxWarning

Isolation = Literal["bwrap", "none"]

logger = logging.getLogger("optforge.sandbox")

# Where a worker's scratch root appears inside bubblewrap (on the sandbox's private /tmp tmpfs).
INSIDE_ROOT = "/tmp/optforge-sandbox"
# Host directories replaced by an empty tmpfs inside bubblewrap (HOME is added at run time): they
# hold per-user secrets (~/.ssh, ~/.config, agent sockets in /tmp and /run/user).
MASKED_DIRS = ("/tmp", "/run")
# The only top-level directories of the host that the sandbox sees (read-only): the operating
# system's programs, libraries and configuration. Everything else (/opt, /var, /srv, /home, /mnt,
# other interpreters and their packages...) is absent unless the worker needs it (sandbox_view).
SYSTEM_ROOTS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
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


def sandbox_env(home: str, gpu: str | None = None) -> dict[str, str]:
    """The worker's whole environment: an allow-list, never inherited (no API keys inside). `gpu`:
    the one device a GPU worker may use; every other worker is told there is none."""
    env = {
        "CUDA_VISIBLE_DEVICES": gpu if gpu is not None else "",
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


def _mapped_library_dirs() -> list[str]:
    """Directories of the shared libraries this process has loaded: on a system whose libraries are
    not under SYSTEM_ROOTS (Nix, a custom prefix), the worker's interpreter needs them too."""
    dirs: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                path = fields[5].strip() if len(fields) == 6 else ""
                if path.startswith("/") and ".so" in os.path.basename(path) and os.path.isfile(path):
                    directory = os.path.dirname(path)
                    if directory not in dirs:
                        dirs.append(directory)
    except OSError:
        pass
    return dirs


def _paths_to_keep(data_dir: Path | None) -> list[str]:
    """Everything the worker must read: the interpreter, the venv, sys.path, our package, data."""
    paths = [*_interpreter_dirs(), os.path.dirname(os.path.realpath(sys.executable)),
             os.path.dirname(sys.executable), *sys.path, str(Path(__file__).resolve().parent.parent),
             *_mapped_library_dirs()]
    if data_dir is not None:
        paths.append(str(data_dir))
    found: list[str] = []
    for path in paths:
        for variant in (os.path.abspath(path or os.getcwd()), os.path.realpath(path or os.getcwd())):
            # "/" (a script run from there) would undo the whole allow-list: never bound
            if variant != "/" and os.path.exists(variant) and variant not in found:
                found.append(variant)
    return found


def _under_any(path: str, parents: Sequence[str]) -> bool:
    return any(_is_under(path, parent) for parent in parents)


@dataclass(frozen=True)
class SandboxView:
    """What of the host's file system a bubblewrap worker sees: an allow-list.

    system: top-level directories of the operating system, bound read-only as they are. links:
    top-level symbolic links among SYSTEM_ROOTS (merged /usr: /bin -> usr/bin), recreated. masked:
    directories replaced by an empty tmpfs (/tmp, /run, HOME). kept: what the worker needs (the
    interpreter, its packages, our package, the data dir), bound read-only where not visible anyway;
    one that *is* a masked directory is not bound back. Nothing else of the host is mounted."""

    system: tuple[str, ...]
    links: tuple[tuple[str, str], ...]
    masked: tuple[str, ...]
    kept: tuple[str, ...]

    def roots(self) -> list[str]:
        """Every host directory whose whole tree the sandbox sees, at the same path."""
        return [*self.system, *(p for p in self.kept if p not in self.masked and os.path.isdir(p))]


def sandbox_view(home: str | None, data_dir: Path | None) -> SandboxView:
    system: list[str] = []
    links: list[tuple[str, str]] = []
    for root in SYSTEM_ROOTS:
        if os.path.islink(root):
            links.append((root, os.readlink(root)))
        elif os.path.isdir(root):
            system.append(root)
    home = os.path.realpath(home) if home else None
    masked = [*MASKED_DIRS, *([home] if home and home != "/" and os.path.isdir(home) else [])]
    kept = [p for p in _paths_to_keep(data_dir) if p not in masked]
    return SandboxView(tuple(system), tuple(links), tuple(masked), tuple(kept))


class _Mounts:
    """bubblewrap arguments, tracking what exists in the sandbox so that missing parent directories
    are created 0755 (bubblewrap 0.8 would create them 0700, untraversable for the job uid)."""

    def __init__(self, masked: Sequence[str]) -> None:
        self.args: list[str] = []
        self.masked = list(masked)
        self.outer: list[str] = []  # bound before the masks: hidden below a mask
        self.inner: list[str] = []  # bound after the masks
        self.made: set[str] = set()  # directories, links and tmpfs made at exactly this path

    def exists(self, path: str) -> bool:
        if path in self.made or _under_any(path, self.inner):
            return True
        return _under_any(path, self.outer) and not _under_any(path, self.masked)

    def parents(self, path: str) -> None:
        parts = Path(path).parts
        for depth in range(2, len(parts)):
            ancestor = str(Path(*parts[:depth]))
            if self.exists(ancestor):
                continue
            if os.path.islink(ancestor):
                self.args += ["--symlink", os.readlink(ancestor), ancestor]
            else:
                self.args += ["--perms", "0755", "--dir", ancestor]
            self.made.add(ancestor)

    def bind(self, path: str, inner: bool) -> None:
        if self.exists(path):
            return
        self.parents(path)
        self.args += ["--ro-bind", path, path]
        (self.inner if inner else self.outer).append(path)

    def mask(self, path: str) -> None:
        """Cover `path` (a directory: an empty tmpfs; anything else: /dev/null)."""
        self.parents(path)
        if os.path.isdir(path) and not os.path.islink(path):
            self.args += ["--tmpfs", path]
        else:
            self.args += ["--ro-bind", "/dev/null", path]


def nvidia_devices(dev: Path = Path("/dev")) -> list[str]:
    """The NVIDIA device nodes a CUDA process needs (the control and UVM devices, every GPU): bound
    into GPU workers' minimal /dev, never into the others'. CUDA_VISIBLE_DEVICES picks the GPU."""
    if not dev.is_dir():
        return []
    return sorted(str(p) for p in dev.iterdir() if p.name.startswith("nvidia") and not p.is_dir())


def bwrap_command(
    bwrap: str, worker_argv: Sequence[str], *, host_root: Path, home: str | None,
    data_dir: Path | None, hidden_paths: Sequence[Path | str], env: dict[str, str],
    devices: Sequence[str] = (),
) -> list[str]:
    """The worker's bubblewrap command line. The sandbox's root is an empty tmpfs, read-only at the
    end, onto which only `sandbox_view` is mounted; then every one of `hidden_paths` (held-out data:
    what the runner was given and every copy heldout.find_copies found) is covered, last, so that
    nothing above can re-expose it."""
    view = sandbox_view(home, data_dir)
    mounts = _Mounts(view.masked)
    args = [bwrap, *namespace_flags(), "--die-with-parent", "--new-session"]
    for root in view.system:
        args += ["--ro-bind", root, root]
        mounts.outer.append(root)
    for link, target in view.links:
        args += ["--symlink", target, link]
        mounts.made.add(link)
    args += ["--dev", "/dev", "--proc", "/proc"]
    for device in devices:  # GPU workers only: the NVIDIA nodes into the otherwise minimal /dev
        args += ["--dev-bind", device, device]
    if os.path.isdir("/sys"):  # kernel information (CPU topology for torch), not files on disk
        args += ["--ro-bind", "/sys", "/sys"]
    inside = [p for p in view.kept if _under_any(p, view.masked)]
    for path in sorted(set(view.kept) - set(inside), key=len):  # parents first; skip children
        mounts.bind(path, inner=False)
    for directory in view.masked:  # mode 0755, owned by root: the job uid cannot write there
        mounts.parents(directory)
        mounts.args += ["--tmpfs", directory]
        mounts.made.add(directory)
    # Re-expose what lies *inside* a masked dir, never a masked dir itself (a script run from
    # /tmp puts /tmp on sys.path; binding it would undo the mask).
    for path in sorted(inside, key=len):
        mounts.bind(path, inner=True)
    if data_dir is not None:
        mounts.args += ["--ro-bind", str(data_dir), str(data_dir)]
    mounts.args += ["--bind", str(host_root), INSIDE_ROOT]
    masks: list[str] = []
    for hidden in hidden_paths:
        for variant in sorted({os.path.abspath(hidden), os.path.realpath(hidden)}):
            if os.path.lexists(variant) and variant not in masks:
                masks.append(variant)
    for path in masks:  # last, so that nothing above can re-expose them
        mounts.mask(path)
    args += [*mounts.args, "--remount-ro", "/", "--clearenv"]
    for name, value in env.items():
        args += ["--setenv", name, value]
    return [*args, "--chdir", "/", "--", *worker_argv]


def heldout_copies(hidden_paths: Sequence[Path | str], data_dir: Path | None,
                   home: str | None) -> list[str]:
    """Every copy of held-out data a worker with this view could read: each file under the whole
    view that has the content of a file under `hidden_paths`, and each directory or file at the
    place of one of them in *any* Python install (other versions' pydoc_data, another venv's
    sklearn/datasets/data). The operating system and interpreter part of the view is walked once
    per process; the data dir every time."""
    fp = heldout.fingerprint(hidden_paths)
    if not fp:
        return []
    view = sandbox_view(home, data_dir)
    prune = (*heldout.PSEUDO_FS, *view.masked)
    data = [str(data_dir)] if data_dir is not None else []
    static = tuple(heldout.outermost([root for root in view.roots() if root not in data]))
    found = heldout.find_copies_cached(static, fp, prune) + heldout.find_copies(data, fp, prune)
    return [*found.dirs, *found.files]
