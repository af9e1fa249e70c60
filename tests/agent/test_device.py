"""Where the proxy tasks train: the `device` setting resolved from what the workers can have, the
job's own check, the reference cache kept per device type, and (marked gpu, skipped without one)
a tier-1 evaluation on CUDA against the CPU's and the sandbox's walls with a GPU exposed."""

from __future__ import annotations

import shutil
import socket

import pytest
import torch

from optforge.agent.config import EvaluationConfig, ExecutorConfig, SandboxConfig
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.evaluation.evaluate import evaluate
from optforge.agent.evaluation.runtime import local_gpus, open_runner, resolve_device
from optforge.sandbox import SandboxUnavailable
from optforge.tasks.baselines import baseline_source
from optforge.tasks.jobs import job_device
from optforge.tasks.proxy import get_task
from tests.sandbox.conftest import code_job

HAS_GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device")
LOCAL = ExecutorConfig()


def test_cpu_is_cpu_whatever_the_machine():
    assert resolve_device("cpu", SandboxConfig(), LOCAL) == "cpu"
    assert resolve_device("cpu", SandboxConfig(), ExecutorConfig(engine="ray", num_gpus=1)) == "cpu"


def test_auto_follows_what_the_workers_can_have():
    assert resolve_device("auto", SandboxConfig(), LOCAL) == ("cuda" if local_gpus() else "cpu")
    assert resolve_device("auto", SandboxConfig(backend="docker"), LOCAL) == "cpu"
    assert resolve_device("auto", SandboxConfig(backend="docker", gpus="all"), LOCAL) == "cuda"
    assert resolve_device("auto", SandboxConfig(), ExecutorConfig(engine="ray")) == "cpu"
    assert resolve_device("auto", SandboxConfig(), ExecutorConfig(engine="ray", num_gpus=1)) == "cuda"


def test_cuda_without_a_gpu_is_one_clear_error():
    with pytest.raises(SandboxUnavailable, match=r"device = cuda, but \[evaluation.executor\] num_gpus is 0"):
        resolve_device("cuda", SandboxConfig(), ExecutorConfig(engine="ray"))
    with pytest.raises(SandboxUnavailable, match=r"\[evaluation.sandbox\] gpus is not set"):
        resolve_device("cuda", SandboxConfig(backend="docker"), LOCAL)


def test_gpus_through_ray_with_docker_are_refused_until_wired():
    ray_gpu = ExecutorConfig(engine="ray", num_gpus=1)
    with pytest.raises(SandboxUnavailable, match="GPUs through Ray need the process sandbox"):
        resolve_device("auto", SandboxConfig(backend="docker", gpus="all"), ray_gpu)


def test_cuda_visible_devices_decides_the_local_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert local_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert local_gpus() == []
    assert resolve_device("auto", SandboxConfig(), LOCAL) == "cpu"


def test_a_job_checks_its_device():
    assert job_device({}) == "cpu"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        job_device({"device": "tpu"})
    if not HAS_GPU:
        with pytest.raises(RuntimeError, match="asks for CUDA but its worker sees no GPU"):
            job_device({"device": "cuda"})


def test_the_reference_cache_keeps_cpu_keys_and_separates_devices(tmp_path):
    cache = BaselineCache(tmp_path)
    task, sweep = get_task("logreg_cancer"), EvaluationConfig().sweep
    args = (task, "optimizer", "source", [0, 1], sweep)
    assert cache._key(*args, "cpu") != cache._key(*args, "cuda")
    assert cache._key(*args, "cpu") == cache._key(*args, "cpu")


# -- on a GPU (marked gpu: `make gpu-check` runs these where there is one) --------------------------


@pytest.mark.gpu
@needs_gpu
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_a_tier1_evaluation_on_cuda_matches_the_cpu_within_noise(tmp_path):
    source = baseline_source("optimizer", "adam")
    scores = {}
    for device in ("cpu", "cuda"):
        config = EvaluationConfig(seeds={1: 4}, device=device, sandbox=SandboxConfig(workers=1))
        with open_runner(config.sandbox, tmp_path, device=device) as runner:
            assert runner.environment.get("device", "cpu") == device
            result = evaluate(source, "optimizer", 1, runner, config, BaselineCache(tmp_path))
        assert result.status == "ok", result.error
        scores[device] = result.score
    # Each device is scored against the reference tuned on that device; the ratio is what must
    # agree. Tier-1 seed noise is ~0.014 (benchmarks/README.md): allow three times that.
    assert scores["cuda"] == pytest.approx(scores["cpu"], abs=0.045), scores


@pytest.mark.gpu
@needs_gpu
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_the_process_sandbox_keeps_its_walls_with_a_gpu_exposed(tmp_path):
    from optforge.sandbox import ProcessRunner

    with socket.socket() as listener:  # on the host's loopback: the job must not reach it
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = (
            "import os, socket, torch\n"
            "x = torch.ones(4, device='cuda').sum().item()\n"
            f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2); net = 'open'\n"
            "except OSError as e:\n    net = type(e).__name__\n"
            "try:\n    open('/usr/optforge-probe', 'w'); write = 'open'\n"
            "except OSError as e:\n    write = type(e).__name__\n"
            "result = {'sum': x, 'net': net, 'write': write,\n"
            "          'visible': os.environ['CUDA_VISIBLE_DEVICES']}\n"
        )
        with ProcessRunner(workers=1, gpus=local_gpus()[:1]) as runner:
            result = runner.run(code_job(code, wall_seconds=120))
    assert result.status == "ok", result.output_tail
    assert result.meta["sum"] == 4.0 and result.meta["visible"] == local_gpus()[0]
    assert result.meta["net"] != "open" and result.meta["write"] != "open"
