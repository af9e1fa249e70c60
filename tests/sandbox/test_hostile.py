"""Every hostile candidate (tests/sandbox/hostile.py) through both backends, on the real evaluation
path (tier 0: the static check, then the job in the sandbox, then the trusted side's checks of its
result). Each must end in one of the statuses an honest sandbox may give it, the next evaluation on
the same runner must be fine, and the host must be unchanged: no file written, no connection made,
no secret seen, no process left.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from optforge.agent.config import EvaluationConfig, SandboxConfig
from optforge.agent.evaluation.evaluate import contract_rejection, run_tier0
from optforge.agent.evaluation.runtime import open_runner
from optforge.archive import EvaluationRecord
from optforge.sandbox import Runner
from optforge.tasks.baselines import baseline_source
from optforge.tasks.data import heldout_source_paths
from tests.sandbox import hostprocs
from tests.sandbox.conftest import SECRET_NAME, SECRET_VALUE, needs_bwrap, secret_in_environment
from tests.sandbox.docker_fixtures import engine_with_image
from tests.sandbox.hostile import CASES, Hostile

REPO = Path(__file__).resolve().parents[2]
# Short limits so that the time and memory cases end quickly; tier 0 of a real optimizer needs
# about a second and well under 1 GB.
CONFIG = EvaluationConfig(sandbox=SandboxConfig(job_timeout_s=15.0, memory_mb=2048))
BACKENDS = [pytest.param("process", marks=needs_bwrap),
            pytest.param("docker", marks=pytest.mark.docker)]


@pytest.fixture(scope="module", params=BACKENDS)
def runner(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    """One worker per backend (so a case that breaks its worker is followed by a job on the same
    slot), started while a fake API key sits in the host's environment."""
    backend = request.param
    if backend == "docker":
        engine_with_image().close()
    cache = tmp_path_factory.mktemp(f"cache-{backend}")
    with secret_in_environment(), open_runner(SandboxConfig(backend=backend, workers=1), cache) as r:
        yield r


class Listener:
    """A loopback TCP listener on the host that counts what connects to it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    listening = Listener()
    yield listening
    listening.close()


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Host files a candidate tries to append to or create: the source tree, an archive, home, /etc."""
    archive_dir = Path("/var/tmp") if os.access("/var/tmp", os.W_OK) else tmp_path_factory.mktemp("a")
    archive = archive_dir / f"optforge-hostile-{os.getpid()}.sqlite"
    archive.write_bytes(b"SQLite format 3\0 pretend archive")
    home = Path.home()
    # The trusted code the sandbox itself imports, and a new file in the checkout.
    trusted = [REPO / "tasks" / "scoring.py", REPO / "sandbox" / "worker.py", REPO / "pwned.txt"]
    return [*trusted, archive, home / ".bashrc", home / "pwned.txt", Path("/etc/passwd"),
            Path("/etc/pwned.txt")]


def _fingerprint(paths: list[Path]) -> dict[str, str | None]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths}


def evaluate_tier0(source: str, runner: Runner) -> EvaluationRecord:
    """Tier 0 as a campaign runs it: the static check first, the sandbox only if it passes."""
    return contract_rejection(source, "optimizer", 0) or run_tier0(source, "optimizer", runner, CONFIG)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_candidate_fails_or_scores_honestly_and_the_host_is_unchanged(
    case: Hostile, runner: Runner, listener: Listener, targets: list[Path]
) -> None:
    token = hostprocs.new_token()
    heldout = [str(p / name) for p in heldout_source_paths() if p.is_dir()
               for name in sorted(os.listdir(p))[:3]]
    source = case.source(token=token, port=listener.port, secret_name=SECRET_NAME,
                         targets=[str(t) for t in targets], heldout=heldout)
    before = _fingerprint(targets)
    connections = listener.connections

    result = evaluate_tier0(source, runner)
    # The per-backend status table of the closing note: `pytest -m ... -rP tests/sandbox/test_hostile.py`
    print(f"{runner.environment['sandbox']:8} {case.name:32} {result.status:13} {result.error or ''}"[:160])

    assert result.status in case.statuses, f"{case.name}: {result.status}: {result.error}"
    assert SECRET_VALUE not in (result.error or "")
    assert (contract_rejection(source, "optimizer", 0) is not None) == case.rejected_by_check
    assert _fingerprint(targets) == before, "a host file was written"
    assert not Path(f"/tmp/pwned-{token}").exists()
    assert listener.connections == connections, "the candidate reached a host listener"
    hostprocs.wait_until(lambda: not hostprocs.live_pids_with_arg(token), 10,
                         "every process the candidate started to be gone")
    follow_up = evaluate_tier0(baseline_source("optimizer", "adamw"), runner)
    assert follow_up.status == "ok", f"the next evaluation after {case.name}: {follow_up.error}"
