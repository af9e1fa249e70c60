"""ProcessRunner: a pool of warm sandbox workers behind the Runner protocol.

    with ProcessRunner(warmup=["optforge.tasks.jobs:warm_up"], data_dir=data) as runner:
        results = runner.run_many(jobs)

Thread-safe: run() takes an idle worker from a queue, so any number of threads may call it; at most
``workers`` jobs run at once. A worker that died, timed out at the host level or could not clean up
is killed and replaced in the background, never reused.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import tempfile
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from optforge.sandbox.errors import SandboxError
from optforge.sandbox.host_worker import WorkerProcess, WorkerSettings
from optforge.sandbox.isolation import Isolation, choose_isolation, warn_unisolated
from optforge.sandbox.records import Job, RunResult
from optforge.sandbox.scratch import force_rmtree


class _Pool:
    """The mutable state of a runner, kept apart so that the exit-time finalizer can close it
    without holding the runner alive."""

    def __init__(self, settings: WorkerSettings, size: int) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.closed = False
        self.live: set[WorkerProcess] = set()
        # None is a slot whose worker is started when next needed (see replace).
        self.idle: queue.Queue[Future[WorkerProcess] | None] = queue.Queue()
        # Workers are started only from these long-lived threads: a worker's parent-death signal
        # (bwrap --die-with-parent, PR_SET_PDEATHSIG) fires when the *thread* that started it ends.
        self.spawner = ThreadPoolExecutor(max_workers=size, thread_name_prefix="optforge-sandbox")

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.settings)
        with self.lock:
            if self.closed:
                worker.kill()
                raise SandboxError("the ProcessRunner was closed")
            self.live.add(worker)
        try:
            worker.wait_ready()
        except BaseException:
            self.forget(worker)
            raise
        return worker

    def forget(self, worker: WorkerProcess) -> None:
        """Kill and drop a worker held by the calling thread."""
        worker.kill()
        worker.release()
        with self.lock:
            self.live.discard(worker)

    def replace(self, worker: WorkerProcess, *, now: bool) -> None:
        """Kill ``worker`` and give its slot a new one: started right away, or (after Ctrl-C, when
        the program is probably exiting) only when a job needs it."""
        self.forget(worker)
        if not self.closed:
            self.idle.put(self.spawner.submit(self.start_worker) if now else None)

    def shutdown(self) -> None:
        with self.lock:
            self.closed = True
            workers = list(self.live)
        for worker in workers:  # busy ones too: their run() then returns "crashed" at once
            worker.kill()
        self.spawner.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(queue.Empty):
            while True:  # idle workers belong to no thread: release them here
                slot = self.idle.get_nowait()
                if slot is not None and slot.done() and not slot.cancelled() \
                        and slot.exception() is None:
                    slot.result().release()
        with contextlib.suppress(OSError):
            force_rmtree(self.settings.scratch_root)


class ProcessRunner:
    """Runs jobs in warm worker processes, isolated with bubblewrap when available.

    workers: pool size (default: one per CPU). warmup: "module:function" entries each worker calls
    once with ``data_dir`` before its first job (load data into module globals there). hidden_paths:
    held-out data, the archive... masked (empty) inside the sandbox. isolation: "auto" uses
    bubblewrap and raises SandboxUnavailable without it unless allow_unisolated=True; "bwrap"
    requires it; "none" (needs allow_unisolated=True) runs plain processes. scratch_root: where the
    per-worker scratch directories live (default: the system temp dir); removed on close().
    """

    def __init__(
        self,
        workers: int | None = None,
        warmup: Sequence[str] = (),
        data_dir: Path | None = None,
        hidden_paths: Sequence[Path] = (),
        isolation: Literal["auto", "bwrap", "none"] = "auto",
        allow_unisolated: bool = False,
        scratch_root: Path | None = None,
    ) -> None:
        self.isolation: Isolation = choose_isolation(isolation, allow_unisolated)
        if self.isolation == "none":
            warn_unisolated(stacklevel=2)  # blame our caller's line
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if data_dir is not None and not Path(data_dir).is_dir():
            raise ValueError(f"data_dir {data_dir} is not a directory")
        scratch = Path(tempfile.mkdtemp(prefix="optforge-sandbox-", dir=scratch_root))
        os.chmod(scratch, 0o711)  # traversable by the unprivileged job uid
        settings = WorkerSettings(
            isolation=self.isolation, bwrap=shutil.which("bwrap"), warmup=tuple(warmup),
            data_dir=Path(data_dir).resolve() if data_dir is not None else None,
            hidden_paths=tuple(Path(p) for p in hidden_paths), scratch_root=scratch)
        self._pool = _Pool(settings, self.workers)
        # Kill every worker on close(), garbage collection or interpreter exit (Ctrl-C included).
        self._finalizer = weakref.finalize(self, self._pool.shutdown)
        starting = [self._pool.spawner.submit(self._pool.start_worker) for _ in range(self.workers)]
        try:
            for future in starting:
                future.result()
        except BaseException:
            self.close()
            raise
        for future in starting:
            self._pool.idle.put(future)

    def run(self, job: Job) -> RunResult:
        _check_payload(job)
        worker = self._checkout()
        interrupted = True
        try:
            result = worker.run(job)
            interrupted = False
        finally:
            if worker.healthy and not self._pool.closed:
                self._pool.idle.put(_done(worker))
            else:
                self._pool.replace(worker, now=not interrupted)
        return result

    def run_many(self, jobs: Sequence[Job]) -> list[RunResult]:
        for job in jobs:
            _check_payload(job)
        if not jobs:
            return []
        with ThreadPoolExecutor(max_workers=min(len(jobs), self.workers)) as threads:
            futures = [threads.submit(self.run, job) for job in jobs]
            try:
                return [future.result() for future in futures]
            except KeyboardInterrupt:  # stop everything now rather than wait for running jobs
                self.close()
                raise

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> ProcessRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _checkout(self) -> WorkerProcess:
        while True:
            if self._pool.closed:
                raise SandboxError("the ProcessRunner is closed")
            try:
                slot = self._pool.idle.get(timeout=0.5)
            except queue.Empty:
                continue
            future = slot if slot is not None else self._pool.spawner.submit(self._pool.start_worker)
            try:
                worker = future.result()
            except Exception:  # a replacement failed to start: try again for the next caller
                if not self._pool.closed:
                    self._pool.idle.put(self._pool.spawner.submit(self._pool.start_worker))
                raise
            except BaseException:  # Ctrl-C while waiting for a start: keep the slot
                self._pool.idle.put(future)
                raise
            if worker.proc.poll() is None:
                return worker
            self._pool.replace(worker, now=True)  # died while idle (e.g. the kernel's OOM killer)


def _done(worker: WorkerProcess) -> Future[WorkerProcess]:
    future: Future[WorkerProcess] = Future()
    future.set_result(worker)
    return future


def _check_payload(job: Job) -> None:
    try:
        json.dumps(job.payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Job.payload for {job.entry} must be JSON-serializable: {exc}") from None
