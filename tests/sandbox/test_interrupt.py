"""Ctrl-C on the host (KeyboardInterrupt, then interpreter exit) kills every sandbox process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from optforge.sandbox import procs
from tests.sandbox import hostprocs
from tests.sandbox.conftest import needs_bwrap

HOST_SCRIPT = """
import sys
from optforge.sandbox import Job, Limits, ProcessRunner
runner = ProcessRunner(workers=1)
code = "import subprocess\\nsubprocess.Popen(['sleep', '{token}'], start_new_session=True).wait()"
runner.run(Job("tests.sandbox.entries:run_code", {{"code": code}}, Limits(wall_seconds=60)))
"""


@needs_bwrap
def test_ctrl_c_on_the_host_leaves_no_sandbox_process_behind(tmp_path: Path) -> None:
    token = hostprocs.new_token()
    script = tmp_path / "host.py"
    script.write_text(textwrap.dedent(HOST_SCRIPT.format(token=token)))
    repo = Path(__file__).resolve().parents[2]
    log = tmp_path / "host.log"
    with open(log, "wb") as output:
        host = subprocess.Popen([sys.executable, str(script)], cwd=repo, stdout=output,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        hostprocs.wait_until(lambda: hostprocs.live_pids_with_arg(token), 30, "the job to start")
        started = {(pid, hostprocs.start_time(pid)) for pid in procs.descendants(host.pid)}
        assert len(started) >= 3  # bwrap, its init, the worker, the job, the sleep...
        host.send_signal(signal.SIGINT)
        assert host.wait(timeout=30) != 0, log.read_text()
    finally:
        if host.poll() is None:
            host.kill()
    hostprocs.wait_until(lambda: not hostprocs.live_pids_with_arg(token), 5, "the daemon to die")
    # Zombies are dead already (re-parented to init, which reaps them in its own time).
    survivors = {pid for pid, t in started if hostprocs.start_time(pid) == t
                 and not hostprocs.is_zombie(pid)}
    assert survivors == set(), [hostprocs.cmdline(pid) for pid in survivors]
    assert "KeyboardInterrupt" in log.read_text()
