"""What bubblewrap keeps away from a job: network, secrets, the host's files, held-out data."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import optforge.sandbox
from optforge.sandbox import ProcessRunner
from tests.sandbox.conftest import SECRET_NAME, SECRET_VALUE, code_job

ALLOWED_ENV = {"PATH", "LANG", "HOME", "TMPDIR", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PWD",
               "CUDA_VISIBLE_DEVICES"}

TRY_WRITE = """
import errno, os
outcome = {}
for path in PATHS:
    try:
        with open(os.path.join(path, "planted.txt"), "w") as f:
            f.write("x")
        outcome[path] = "written"
    except OSError as exc:
        outcome[path] = errno.errorcode[exc.errno]
result = outcome
"""


def test_runner_reports_bubblewrap_isolation(runner: ProcessRunner) -> None:
    assert runner.isolation == "bwrap"


def test_host_environment_secrets_are_not_visible_in_the_job(runner: ProcessRunner) -> None:
    assert os.environ[SECRET_NAME] == SECRET_VALUE  # the host has it...
    code = (
        "import os\n"
        "environs = []\n"
        "for pid in os.listdir('/proc'):\n"
        "    try: environs.append(open(f'/proc/{pid}/environ', 'rb').read().decode())\n"
        "    except (OSError, ValueError): pass\n"
        "result = {'env': dict(os.environ), 'proc_environ': environs}\n"
    )
    result = runner.run(code_job(code))
    assert result.status == "ok", result.output_tail
    assert set(result.meta["env"]) <= ALLOWED_ENV  # ...the job's environment is an allow-list
    assert SECRET_VALUE not in json.dumps(result.meta)  # nor readable from any process it sees


def test_loopback_listener_on_the_host_is_unreachable(runner: ProcessRunner) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    result = {'connected': True}\n"
            "except OSError as exc:\n"
            "    result = {'connected': False, 'error': str(exc)}\n"
        )
        result = runner.run(code_job(code))
        assert result.status == "ok", result.output_tail
        assert result.meta["connected"] is False
        try:
            listener.accept()
            raise AssertionError("the job reached the host's listener")
        except BlockingIOError:
            pass


def test_only_the_scratch_dir_is_writable(runner: ProcessRunner, outside_tmp: Path) -> None:
    source_tree = Path(optforge.sandbox.__file__).resolve().parent
    paths = [".", str(source_tree), "/var/tmp", str(outside_tmp / "data"), "/tmp", "/dev/shm",
             os.environ.get("HOME", "/root")]
    result = runner.run(code_job(f"PATHS = {paths!r}\n{TRY_WRITE}"))
    assert result.status == "ok", result.output_tail
    outcome = result.meta
    assert outcome.pop(".") == "written"
    # Read-only mounts refuse with EROFS whatever the uid; private tmpfs dirs are root-owned.
    assert outcome[str(source_tree)] == "EROFS"
    assert outcome["/var/tmp"] == "EROFS" and outcome[str(outside_tmp / "data")] == "EROFS"
    assert set(outcome.values()) <= {"EROFS", "EACCES"}, outcome
    assert not (source_tree / "planted.txt").exists()
    assert not (outside_tmp / "data" / "planted.txt").exists()


def test_hidden_paths_are_empty_and_unwritable(runner: ProcessRunner, outside_tmp: Path) -> None:
    hidden = outside_tmp / "heldout"
    code = (
        "import os\n"
        f"listing = os.listdir({str(hidden)!r})\n"
        "try:\n"
        f"    open({str(hidden / 'secret.txt')!r}).read()\n"
        "    read = 'read'\n"
        "except OSError as exc:\n"
        "    read = type(exc).__name__\n"
        f"PATHS = [{str(hidden)!r}]\n{TRY_WRITE}\n"
        f"result = {{'listing': listing, 'read': read, 'write': outcome[{str(hidden)!r}]}}\n"
    )
    result = runner.run(code_job(code))
    assert result.status == "ok", result.output_tail
    assert result.meta == {"listing": [], "read": "FileNotFoundError", "write": "EACCES"}
    assert (hidden / "secret.txt").read_text() == "held-out labels"  # untouched on the host


def test_data_dir_is_readable_by_the_job(runner: ProcessRunner, outside_tmp: Path) -> None:
    path = outside_tmp / "data" / "train.txt"
    result = runner.run(code_job(f"result = {{'text': open({str(path)!r}).read()}}"))
    assert result.meta == {"text": "training data"}


def test_home_is_replaced_by_an_empty_tmpfs_with_only_the_interpreter_bound_back(
        runner: ProcessRunner) -> None:
    home = Path(os.environ.get("HOME", "/root")).resolve()
    needed = set()  # first components of interpreter / sys.path locations under HOME
    for path in (sys.prefix, sys.base_prefix, sys.executable, *sys.path):
        resolved = Path(path or ".").resolve()
        if resolved.is_relative_to(home) and resolved != home:
            needed.add(resolved.relative_to(home).parts[0])
    result = runner.run(code_job(f"import os\nresult = {{'home': os.listdir({str(home)!r})}}"))
    assert result.status == "ok", result.output_tail
    assert set(result.meta["home"]) <= needed  # no dotfiles, keys or caches of the host user


GPU_VIEW = (
    "import os\n"
    "result = {'visible': os.environ.get('CUDA_VISIBLE_DEVICES'),\n"
    "          'nodes': sorted(n for n in os.listdir('/dev') if n.startswith('nvidia'))}\n"
)


def test_a_cpu_worker_is_told_there_is_no_gpu_and_gets_no_nvidia_device(runner: ProcessRunner) -> None:
    result = runner.run(code_job(GPU_VIEW))
    assert result.status == "ok", result.output_tail
    assert result.meta == {"visible": "", "nodes": []}


def test_gpu_workers_get_one_device_each_in_turn(outside_tmp) -> None:
    with ProcessRunner(workers=2, gpus=["0", "1"], data_dir=outside_tmp / "data") as gpu_runner:
        results = gpu_runner.run_many([code_job(GPU_VIEW + "import time; time.sleep(1)")] * 2)
        assert gpu_runner.environment["gpus"] == "0,1"
    assert sorted(r.meta["visible"] for r in results) == ["0", "1"], results


def test_a_gpu_worker_caps_the_data_segment_not_the_address_space(outside_tmp) -> None:
    # CUDA reserves far more address space than it uses and fails under RLIMIT_AS.
    code = ("import resource\n"
            "result = {'as': resource.getrlimit(resource.RLIMIT_AS)[0],\n"
            "          'data': resource.getrlimit(resource.RLIMIT_DATA)[0]}\n")
    with ProcessRunner(workers=1, gpus=["0"], data_dir=outside_tmp / "data") as gpu_runner:
        gpu = gpu_runner.run(code_job(code))
    with ProcessRunner(workers=1, data_dir=outside_tmp / "data") as cpu_runner:
        cpu = cpu_runner.run(code_job(code))
    import resource

    unlimited = resource.RLIM_INFINITY
    assert gpu.meta["as"] == unlimited and gpu.meta["data"] != unlimited, gpu.meta
    assert cpu.meta["as"] != unlimited, cpu.meta


def test_only_gpu_workers_bind_the_nvidia_device_nodes(tmp_path) -> None:
    from optforge.sandbox.isolation import bwrap_command, nvidia_devices

    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "null"):
        (tmp_path / name).touch()
    (tmp_path / "nvidia-caps").mkdir()
    devices = nvidia_devices(tmp_path)
    assert [Path(d).name for d in devices] == ["nvidia-uvm", "nvidia0", "nvidia1", "nvidiactl"]
    common = dict(host_root=tmp_path, home=None, data_dir=None, hidden_paths=[], env={})
    with_gpu = bwrap_command("bwrap", ["python"], devices=devices, **common)
    without = bwrap_command("bwrap", ["python"], **common)
    binds = [with_gpu[i + 1] for i, a in enumerate(with_gpu) if a == "--dev-bind"]
    assert binds == devices
    assert "--dev-bind" not in without
