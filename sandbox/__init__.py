"""optforge.sandbox: run untrusted candidate code in warm, killable, isolated worker processes.

Public API::

    Limits, Job, RunResult, Status     records (records.py)
    Runner                             the protocol every backend implements
    ProcessRunner                      warm workers under bubblewrap (or plain processes, opt-in)
    DockerRunner                       warm workers in hardened containers (docker SDK)
    SandboxError, SandboxUnavailable   our own misconfiguration; candidate failures are statuses
    UnisolatedSandboxWarning           emitted whenever a runner runs without bubblewrap

What is and is not protected against: THREAT_MODEL.md next to this file.
"""

from optforge.sandbox.docker_runner import DockerRunner
from optforge.sandbox.errors import SandboxError, SandboxUnavailable, UnisolatedSandboxWarning
from optforge.sandbox.process_runner import ProcessRunner
from optforge.sandbox.records import Job, Limits, Runner, RunResult, Status

__all__ = [
    "DockerRunner",
    "Job",
    "Limits",
    "ProcessRunner",
    "RunResult",
    "Runner",
    "SandboxError",
    "SandboxUnavailable",
    "Status",
    "UnisolatedSandboxWarning",
]
