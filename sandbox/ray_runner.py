"""RayRunner: the Runner protocol over Ray actors, each owning a one-worker local runner on its node.

    runner = RayRunner(node_factory="pkg.module:make_runner", node_kwargs={...}, address="auto")
    results = runner.run_many(jobs)

Only jobs and their results travel. Each actor builds its own local runner (a ProcessRunner or a
DockerRunner with one warm worker) by calling ``node_factory(**node_kwargs)`` on its node, so the
isolation, the limits and the timeout that kills a job's process tree are the local backend's,
unchanged: Ray cannot interrupt a running task, the sandbox worker inside the actor does.

Faults: an actor that dies while it runs a job (its process killed, its node lost) is replaced and
the job is retried once on another actor; a job that loses its actor twice comes back as
``crashed``. A job is pure (its result is a function of its payload), so a retry cannot duplicate
anything: only the caller stores results. An actor that returns nothing well after the job's own
wall-clock limit is killed and replaced, and the job comes back as ``timeout``.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optforge.sandbox.errors import SandboxError, SandboxUnavailable
from optforge.sandbox.host_worker import HOST_GRACE_SECONDS, STARTUP_TIMEOUT_SECONDS
from optforge.sandbox.pool import check_payload, run_concurrently
from optforge.sandbox.records import Job, Runner, RunResult

log = logging.getLogger(__name__)

# Seconds an actor may exceed a job's own wall-clock limit before it is presumed hung: its local
# runner kills the job at the limit, so only a wedged actor or node gets this far; but the actor may
# first have to start a replacement worker (after the previous job killed its own), which may take
# up to the worker's start-up timeout.
RESULT_GRACE_S = STARTUP_TIMEOUT_SECONDS + 2 * HOST_GRACE_SECONDS
# Seconds an idle actor has to answer the ping at checkout before it counts as dead.
PING_TIMEOUT_S = 60.0
# Attempts per job when actors die under it: the first run and one retry, as the design says.
ATTEMPTS = 2


class SandboxActor:
    """Lives in a Ray actor process: a local runner with one warm worker, built on this node."""

    def __init__(self, node_factory: str, node_kwargs: dict[str, Any]) -> None:
        module, _, name = node_factory.partition(":")
        factory = getattr(importlib.import_module(module), name)
        self.runner: Runner = factory(**node_kwargs)

    def ready(self) -> dict[str, Any]:
        """Who and where this actor is, once its worker is warm."""
        import ray  # inside the actor process, where ray is always importable

        return {
            "pid": os.getpid(),
            "node": ray.util.get_node_ip_address(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "environment": dict(self.runner.environment),
        }

    def run(self, job: Job) -> RunResult:
        return self.runner.run(job)

    def close(self) -> None:
        self.runner.close()


@dataclass
class _Actor:
    handle: Any  # ray.actor.ActorHandle
    pid: int
    node: str
    node_id: str
    environment: dict[str, str]

    def describe(self) -> str:
        return f"actor pid {self.pid} on {self.node}"


class RayRunner:
    """Runs jobs on Ray actors (see the module docstring).

    address: None starts a private Ray instance on this machine (stopped by close()); "auto" or
    "host:port" joins a running cluster. actors: how many (default: as many as the cluster's
    resources hold at num_cpus and num_gpus each). num_gpus: per actor; Ray gives an actor with
    num_gpus=1 its own device through CUDA_VISIBLE_DEVICES. start_timeout_s: how long one actor may
    take to start (a node's first actor may prepare data and import torch).
    """

    def __init__(
        self,
        node_factory: str,
        node_kwargs: dict[str, Any],
        *,
        address: str | None = None,
        actors: int | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        start_timeout_s: float = 600.0,
    ) -> None:
        ray = _import_ray()
        self._ray = ray
        self._started_ray = False
        if not ray.is_initialized():
            _connect(ray, address)
            self._started_ray = address is None
        # run() and the checkout ping may overlap on one actor only by accident; two slots keep a
        # ping from queueing behind a long job.
        self._options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_restarts": 0,
                         "max_concurrency": 2}
        self._remote = ray.remote(SandboxActor).options(**self._options)
        self._factory, self._kwargs = node_factory, dict(node_kwargs)
        self._start_timeout_s = start_timeout_s
        try:
            self.workers = actors if actors is not None else _fitting_actors(ray, num_cpus, num_gpus)
            if self.workers < 1:
                raise ValueError(f"actors must be at least 1, got {actors}")
        except BaseException:
            if self._started_ray:
                ray.shutdown()
            raise
        self._lock = threading.Lock()
        self._closed = False
        self._starting = 0  # replacement actors being started
        self._live: list[_Actor] = []
        self._idle: queue.Queue[_Actor] = queue.Queue()
        self.replaced = 0  # actors replaced after a death or a hang, for logs and tests
        try:
            first = self._start_actors(self.workers)
        except BaseException:
            self.close()
            raise
        for actor in first:
            self._idle.put(actor)
        self.environment = {
            **first[0].environment, "executor": "ray", "ray_nodes": str(len({a.node_id for a in first}))
        }

    # -- Runner protocol -------------------------------------------------------------------------

    def run(self, job: Job) -> RunResult:
        check_payload(job)
        lost: list[str] = []
        for _ in range(ATTEMPTS):
            actor = self._checkout()
            outcome = self._run_on(actor, job)
            if isinstance(outcome, RunResult):
                return outcome
            lost.append(f"{actor.describe()}: {outcome}")
        return RunResult(
            status="crashed", tensors={}, meta={},
            error=f"the job lost its Ray actor {len(lost)} times (a killed process or a lost node): "
            + "; ".join(lost),
            output_tail="", wall_seconds=0.0,
        )

    def run_many(self, jobs: Sequence[Job]) -> list[RunResult]:
        return run_concurrently(self.run, self.close, jobs, self.workers)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            actors = list(self._live)
        for actor in actors:  # killing the actor process takes its sandbox worker with it
            self._kill(actor)
        if self._started_ray:
            self._ray.shutdown()

    def __enter__(self) -> RayRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- actors ----------------------------------------------------------------------------------

    def _run_on(self, actor: _Actor, job: Job) -> RunResult | str:
        """The job's result, or why the actor was lost (it is then replaced)."""
        ray = self._ray
        ref = actor.handle.run.remote(job)
        started = time.monotonic()
        try:
            result: RunResult = ray.get(ref, timeout=job.limits.wall_seconds + RESULT_GRACE_S)
        except ray.exceptions.GetTimeoutError:
            self._replace(actor, "no result in time")
            return RunResult(
                status="timeout", tensors={}, meta={},
                error=f"{actor.describe()} returned nothing {RESULT_GRACE_S:g} s past the job's "
                f"{job.limits.wall_seconds:g} s limit; it was killed and replaced",
                output_tail="", wall_seconds=time.monotonic() - started,
            )
        except ray.exceptions.RayError as exc:
            # The actor died (RayActorError), its node or raylet did, the result was lost with its
            # node (ObjectLostError), or the local runner inside raised (RayTaskError: it could
            # not start a worker): in every case the job did not come back from this actor.
            why = _first_line(exc)
            self._replace(actor, why)
            return why
        except KeyboardInterrupt:  # the actor may still be running the job: never reuse it
            self._replace(actor, "interrupted", now=False)
            raise
        self._idle.put(actor)
        return result

    def _checkout(self) -> _Actor:
        """An idle actor that answers a ping: one that died while idle (its node lost between
        jobs) is replaced here, so that it does not cost a job one of its attempts."""
        waited = 0.0
        while True:
            if self._closed:
                raise SandboxError("the Ray runner is closed")
            try:
                actor = self._idle.get(timeout=0.5)
            except queue.Empty:
                actor = None
            if actor is not None:
                if self._answers(actor):
                    return actor
                continue
            with self._lock:
                alive = len(self._live) + self._starting
            waited = 0.0 if alive else waited + 0.5  # how long nothing has been alive or starting
            if waited > self._start_timeout_s:
                raise SandboxError(
                    f"no Ray actor is alive and none started in {self._start_timeout_s:g} s: check "
                    f"that the cluster still has a node with {self._options['num_cpus']:g} CPUs "
                    "free (`ray status`)"
                )

    def _answers(self, actor: _Actor) -> bool:
        ray = self._ray
        try:
            ray.get(actor.handle.ready.remote(), timeout=PING_TIMEOUT_S)
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as exc:
            self._replace(actor, f"dead while idle: {_first_line(exc)}")
            return False
        return True

    def _replace(self, actor: _Actor, why: str, *, now: bool = True) -> None:
        log.warning("replacing Ray %s: %s", actor.describe(), why)
        self._kill(actor)
        with self._lock:
            self.replaced += 1
            if self._closed or not now:
                return
            self._starting += 1
        threading.Thread(target=self._start_replacement, daemon=True,
                         name="optforge-ray-replace").start()

    def _start_replacement(self) -> None:
        try:
            (actor,) = self._start_actors(1)
        except SandboxError as exc:  # the job that needs it fails later, in _checkout, with why
            log.error("could not replace a Ray actor: %s", exc)
            return
        except (Exception, SystemExit) as exc:  # Ray shut down under it (the runner was closed)
            log.debug("replacing a Ray actor stopped: %r", exc)
            return
        finally:
            with self._lock:
                self._starting -= 1
        self._idle.put(actor)

    def _start_actors(self, count: int) -> list[_Actor]:
        ray = self._ray
        handles = [self._remote.remote(self._factory, self._kwargs) for _ in range(count)]
        with self._lock:
            closed = self._closed
        if closed:
            for handle in handles:
                ray.kill(handle)
            raise SandboxError("the Ray runner was closed")
        try:
            infos = ray.get([h.ready.remote() for h in handles], timeout=self._start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            for handle in handles:
                ray.kill(handle)
            raise SandboxUnavailable(
                f"Ray could not start {count} sandbox actor(s) with {self._options['num_cpus']:g} "
                f"CPUs and {self._options['num_gpus']:g} GPUs each within "
                f"{self._start_timeout_s:g} s: lower `workers` or add nodes (`ray status`)"
            ) from None
        except ray.exceptions.RayActorError as exc:
            for handle in handles:
                ray.kill(handle)
            raise SandboxUnavailable(
                f"a Ray sandbox actor failed to start: {_cause(exc)}"
            ) from None
        actors = [
            _Actor(h, info["pid"], info["node"], info["node_id"], info["environment"])
            for h, info in zip(handles, infos, strict=True)
        ]
        with self._lock:
            closed = self._closed
            if not closed:
                self._live.extend(actors)
        if closed:  # close() ran while these started: it could not see them
            for actor in actors:
                self._ray.kill(actor.handle)
            raise SandboxError("the Ray runner was closed")
        return actors

    def _kill(self, actor: _Actor) -> None:
        with self._lock:
            if actor in self._live:
                self._live.remove(actor)
        try:
            self._ray.kill(actor.handle)
        except Exception as exc:  # already gone with its node: nothing left to stop
            log.debug("killing %s: %s", actor.describe(), exc)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SandboxUnavailable(
            "the ray executor needs Ray: pip install 'optforge[ray]'"
        ) from None
    return ray


def _connect(ray: Any, address: str | None) -> None:
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": False}
    if address is None:
        ray.init(**kwargs)
        return
    _check_reachable(address)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError) as exc:
        raise SandboxUnavailable(
            f"cannot reach the Ray cluster at {address}: {_first_line(exc)} (start it with "
            "`ray start --head`, or check the address `ray status` prints)"
        ) from None


def _check_reachable(address: str) -> None:
    """Fail in seconds on a wrong host:port: ray.init retries an unreachable head for minutes."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", "ray://...": Ray resolves and reports those itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise SandboxUnavailable(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} (start it with "
            "`ray start --head`, or check the address `ray status` prints)"
        ) from None


def _fitting_actors(ray: Any, num_cpus: float, num_gpus: float) -> int:
    """How many actors the cluster's resources hold at once."""
    total = ray.cluster_resources()
    fits = int(total.get("CPU", 0) // num_cpus) if num_cpus > 0 else 1 << 30
    if num_gpus > 0:
        fits = min(fits, int(total.get("GPU", 0) // num_gpus))
    if fits < 1:
        raise SandboxUnavailable(
            f"the Ray cluster has {total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs: "
            f"not enough for one actor with {num_cpus:g} CPUs and {num_gpus:g} GPUs"
        )
    return fits


def _cause(exc: BaseException) -> str:
    """The error an actor's constructor raised, from the traceback Ray wraps it in."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    raised = [line for line in lines if not line.startswith(("File ", "^", "~")) and ": " in line
              and line.split(":", 1)[0].replace(".", "").isidentifier()]
    return raised[-1] if raised else _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
