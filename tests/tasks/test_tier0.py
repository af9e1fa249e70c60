"""Tier 0: conformance checks and the behaviour fingerprint."""

import pytest

from optforge.tasks.baselines import baseline_names, load_baseline
from optforge.tasks.contracts import load_candidate
from optforge.tasks.tier0 import run_tier0

SGD = """
HPARAMS = {"lr": 0.01}
def init(param):
    return {}
def update(grad, param, state, step, hp):
    return -hp["lr"] * grad, state
"""


@pytest.mark.parametrize("kind", ["optimizer", "loss", "schedule"])
def test_every_baseline_passes_tier0(kind):
    for name in baseline_names(kind):
        report = run_tier0(load_baseline(kind, name))
        assert report.passed, (name, report.error)
        assert (report.batching, report.batching_note) == ("vmap_lr", None)
        assert len(report.fingerprint) == 16


def _optimizer(body: str) -> str:
    return SGD.replace('    return -hp["lr"] * grad, state', body)


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ('    return grad * float("nan"), state', "finite"),
        ("    return torch.zeros_like(param), state", "improves_rosenbrock"),
        ("    return grad * 0.01, state", "improves_rosenbrock"),  # ascends
        ("    return torch.rand_like(grad) * 0.0 + torch.rand(1) - grad * 0.01, state", "deterministic"),
        ("    return grad[:1], state", "runs"),
        ("    return -grad", "runs"),
        ("    raise ValueError('boom')", "runs"),
    ],
)
def test_broken_optimizers_fail_the_named_check(body, check):
    source = _optimizer(body)
    if "torch." in body:
        source = "import torch\n" + source
    report = run_tier0(load_candidate(source, "optimizer"))
    assert not report.passed
    assert report.error.startswith(check), report.error


def test_exception_in_init_is_reported_with_its_message():
    source = "import torch\n" + SGD.replace("    return {}", "    raise RuntimeError('no state for you')")
    report = run_tier0(load_candidate(source, "optimizer"))
    assert report.error == "runs: RuntimeError: no state for you"


@pytest.mark.parametrize(
    ("body", "batching", "note"),
    [
        # Reductions over the whole tensor are per member under vmap: fully batched.
        ('    return -hp["lr"] * grad / (grad.norm() + 1e-8), state', "vmap_lr", None),
        # The rate turned into a Python number: seeds batch, learning rates run one per job.
        ('    return -math.sqrt(hp["lr"]) * 0.1 * grad, state', "vmap", "vmap_lr: optimizer candidate"),
        # Reads the rate's type: batched rates would silently change what it computes.
        ('    return -(hp["lr"] if isinstance(hp["lr"], float) else 0.5) * grad, state', "vmap",
         "vmap_lr: batched learning rates differ from separate runs"),
        # The rate as a clamp bound: under vmap a float64 per-member rate makes clamp compute in
        # float64 where the real optimizer computes in float32, so rates run one per job.
        ('    return torch.clamp(-grad, -hp["lr"], hp["lr"]), state', "vmap",
         "vmap_lr: batched learning rates compute in float64 unlike separate runs"),
        # Python control flow on tensor values: only one member at a time can run it.
        ('    if grad.abs().max() > 0.5:\n        grad = grad / 2\n    return -hp["lr"] * grad, state', "loop",
         "vmap: optimizer candidate"),
    ],
)
def test_tier0_picks_the_most_batched_mode_that_runs_and_says_why_not_more(body, batching, note):
    source = "import math\nimport torch\n" + _optimizer(body)
    report = run_tier0(load_candidate(source, "optimizer"))
    assert report.passed, report.error
    assert report.batching == batching
    assert (report.batching_note is None) if note is None else report.batching_note.startswith(note)
    assert any(c["name"] == "batching" and c["detail"].startswith(batching) for c in report.checks)


def test_a_loss_vmap_cannot_run_is_trained_one_member_at_a_time():
    source = ("import torch\nimport torch.nn.functional as F\ndef loss(logits, targets):\n"
              "    ce = F.cross_entropy(logits, targets)\n    return ce * 2 if ce.item() > 10 else ce\n")
    report = run_tier0(load_candidate(source, "loss"))
    assert report.passed, report.error
    assert report.batching == "loop" and ".item()" in report.batching_note


def test_fingerprint_identifies_rewritten_but_equivalent_code():
    rewritten = _optimizer('    delta = grad * hp["lr"]\n    return -delta, dict(state)')
    a = run_tier0(load_candidate(SGD, "optimizer"))
    b = run_tier0(load_candidate(rewritten, "optimizer"))
    c = run_tier0(load_baseline("optimizer", "adam"))
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint


def test_constant_zero_schedule_fails():
    source = "def schedule(step, total_steps):\n    return 0.0\n"
    report = run_tier0(load_candidate(source, "schedule"))
    assert not report.passed and report.error.startswith("not_all_zero")


def test_loss_with_zero_gradient_fails():
    source = "import torch\ndef loss(logits, targets):\n    return (logits * 0).sum()\n"
    report = run_tier0(load_candidate(source, "loss"))
    assert not report.passed and report.error.startswith("finite_gradient")


@pytest.mark.parametrize(
    ("name", "tensors"), [("adam", 2), ("lion", 1), ("nesterov", 1), ("signsgd", 0)]
)
def test_state_tensors_counts_the_memory_an_optimizer_keeps_per_parameter(name, tensors):
    assert run_tier0(load_baseline("optimizer", name)).state_tensors == tensors
