"""A pool of warm workers behind the Runner protocol, whatever a worker is (process, container).

Thread-safe: run() takes an idle worker from a queue, so any number of threads may call it; at most
``size`` jobs run at once. A worker that died, timed out at the host level or could not clean up is
killed and replaced in the background, never reused.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from optforge.sandbox.errors import SandboxError
from optforge.sandbox.host_worker import WorkerHandle
from optforge.sandbox.records import Job, RunResult

WorkerFactory = Callable[[], WorkerHandle]


class WorkerPool:
    """The mutable state of a runner, kept apart so that the exit-time finalizer can close it
    without holding the runner alive."""

    def __init__(self, factory: WorkerFactory, size: int, on_shutdown: Callable[[], None]) -> None:
        self.factory = factory
        self.on_shutdown = on_shutdown
        self.lock = threading.Lock()
        self.closed = False
        self.live: set[WorkerHandle] = set()
        # None is a slot whose worker is started when next needed (see replace).
        self.idle: queue.Queue[Future[WorkerHandle] | None] = queue.Queue()
        # Workers are started only from these long-lived threads: a process worker's parent-death
        # signal (bwrap --die-with-parent, PR_SET_PDEATHSIG) fires when the *thread* that started it
        # ends.
        self.spawner = ThreadPoolExecutor(max_workers=size, thread_name_prefix="optforge-sandbox")

    def start_worker(self) -> WorkerHandle:
        worker = self.factory()
        with self.lock:
            if self.closed:
                worker.kill()
                raise SandboxError("the sandbox runner was closed")
            self.live.add(worker)
        try:
            worker.wait_ready()
        except BaseException:
            self.forget(worker)
            raise
        return worker

    def forget(self, worker: WorkerHandle) -> None:
        """Kill and drop a worker held by the calling thread."""
        worker.kill()
        worker.release()
        with self.lock:
            self.live.discard(worker)

    def replace(self, worker: WorkerHandle, *, now: bool) -> None:
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
        self.on_shutdown()


class PooledRunner:
    """Runner protocol over a WorkerPool. Subclasses call `_start_pool` from their __init__."""

    workers: int
    _pool: WorkerPool

    def _start_pool(self, factory: WorkerFactory, on_shutdown: Callable[[], None]) -> None:
        self._pool = WorkerPool(factory, self.workers, on_shutdown)
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
        check_payload(job)
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
        return run_concurrently(self.run, self.close, jobs, self.workers)

    def close(self) -> None:
        self._finalizer()

    def _checkout(self) -> WorkerHandle:
        while True:
            if self._pool.closed:
                raise SandboxError("the sandbox runner is closed")
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
            if worker.alive():
                return worker
            self._pool.replace(worker, now=True)  # died while idle (e.g. the kernel's OOM killer)


def _done(worker: WorkerHandle) -> Future[WorkerHandle]:
    future: Future[WorkerHandle] = Future()
    future.set_result(worker)
    return future


def run_concurrently(
    run: Callable[[Job], RunResult], close: Callable[[], None], jobs: Sequence[Job], workers: int
) -> list[RunResult]:
    """Every job through `run`, up to `workers` at once; results in job order. Ctrl-C calls
    `close` (stop everything now rather than wait for running jobs) and re-raises."""
    for job in jobs:
        check_payload(job)
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(len(jobs), workers)) as threads:
        futures = [threads.submit(run, job) for job in jobs]
        try:
            return [future.result() for future in futures]
        except KeyboardInterrupt:
            close()
            raise


def check_payload(job: Job) -> None:
    try:
        json.dumps(job.payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Job.payload for {job.entry} must be JSON-serializable: {exc}") from None
