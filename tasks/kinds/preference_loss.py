"""The preference_loss kind: a DPO-style objective, in DiscoPOP's signature.

    def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
             reference_rejected_logps, beta): ...      # each [B] -> per-pair losses [B]

Log-probs are summed over a continuation's characters; the trainer minimises the mean of the result.
It is scored on the preference task (tasks/preference/), not the proxy tasks: the char-GPT is aligned
at each beta of a fixed grid and the reward-vs-KL frontier is measured on the trusted side, against
DPO tuned on the same grid (beta plays the role the learning rate plays for optimizers).
"""

from __future__ import annotations

import torch

from ..adapters import CandidatePreferenceLoss
from ..contracts import Candidate
from ..tier0 import Tier0Report, digest, fixed, record_batching
from ..training import TrainSpec
from .spec import ExportSpec, KindSpec, SweepPlan, no_proxy_task

TIER0_BETAS = (0.1, 0.3, 1.0, 3.0)


def train_spec(candidate: Candidate, lrs: tuple[float, ...]) -> TrainSpec:
    raise ValueError("a preference loss trains on the preference task (tasks/preference), not on proxy tasks")


def _inputs(salt: int) -> list[torch.Tensor]:
    """Summed log-probs of 10 pairs as training sees them: tens of nats below zero, the policy's
    within a few nats of the reference's (it starts as a copy), so margins are O(1) as in DiscoPOP's
    gate, not the +-30 of independent draws that would overflow any exponential loss at beta 3."""
    reference = [-(fixed((10,), salt + i).abs() * 20 + 40) for i in (0, 1)]
    policy = [r + fixed((10,), salt + 2 + i) for i, r in enumerate(reference)]
    return [*policy, *reference]


def _preference_checks(candidate: Candidate, report: Tier0Report) -> None:
    loss = CandidatePreferenceLoss(candidate)
    outputs: list[torch.Tensor] = []
    for beta in TIER0_BETAS:
        chosen, rejected, ref_chosen, ref_rejected = _inputs(100)
        policy = [chosen.clone().requires_grad_(True), rejected.clone().requires_grad_(True)]
        value = loss(*policy, ref_chosen, ref_rejected, beta)  # shape checked by the adapter
        if not report.record("reacts_to_policy", value.requires_grad,
                             "the loss does not depend on the policy's log-probs: nothing would train"):
            return
        grads = torch.autograd.grad(value.mean(), policy, allow_unused=True)
        grads = tuple(torch.zeros(10) if g is None else g for g in grads)
        finite = bool(torch.isfinite(value).all()) and all(bool(torch.isfinite(g).all()) for g in grads)
        if not report.record("finite", finite, f"loss or its gradient is not finite at beta={beta}"):
            return
        outputs += [value.detach(), *grads]
    reacts = any(bool(g.abs().sum() > 0) for g in outputs[1::3] + outputs[2::3])
    if not report.record("policy_gradient", reacts,
                         "the loss has no gradient with respect to the policy's log-probs: nothing would train"):
        return
    chosen, rejected, ref_chosen, ref_rejected = _inputs(100)
    moved = loss(chosen + 3.0, rejected - 3.0, ref_chosen, ref_rejected, 1.0)
    still = loss(chosen, rejected, ref_chosen, ref_rejected, 1.0)
    report.record("not_constant", not torch.allclose(moved, still),
                  "the loss does not change when the policy prefers the chosen continuation more")
    record_batching(report, "loop", "preference training runs one beta per job")
    report.fingerprint = digest(outputs)


PUBLIC_CODE = '''class DiscoveredPreferenceLoss(CandidatePreferenceLoss):
    """The candidate as an nn.Module: forward(policy_chosen_logps, policy_rejected_logps,
    reference_chosen_logps, reference_rejected_logps, beta) -> per-pair losses [B]."""

    def __init__(self) -> None:
        super().__init__(CANDIDATE)


discovered_preference_loss = DiscoveredPreferenceLoss()  # the same, called as a function

__all__ = ["CANDIDATE", "PROVENANCE", "DiscoveredPreferenceLoss", "discovered_preference_loss"]'''


SPEC = KindSpec(
    name="preference_loss",
    summary="a DPO-style preference loss: loss(policy_chosen_logps, policy_rejected_logps, "
    "reference_chosen_logps, reference_rejected_logps, beta) -> per-pair losses",
    main_function="loss",
    baselines="preference_losses",
    tier0=_preference_checks,
    train_spec=train_spec,
    runs_on=no_proxy_task,
    metric=lambda task: "reward_kl_auc",
    reference=("preference_loss", "dpo"),
    sweep=SweepPlan(hyperparameter="beta", centre="reference"),
    export=ExportSpec(
        public_name="DiscoveredPreferenceLoss",
        roots=("load_candidate", "CandidatePreferenceLoss"),
        public_code=PUBLIC_CODE,
        usage=(
            "from {module} import discovered_preference_loss",
            "losses = discovered_preference_loss(policy_chosen_logps, policy_rejected_logps,",
            "                                    reference_chosen_logps, reference_rejected_logps, beta)",
            "loss = losses.mean()  # each log-prob [B], summed over a response's tokens",
            '# or: optforge.load_preference_loss("{file}")',
        ),
        api_loader="load_preference_loss",
        scoring=(
            "Scores against DPO (area under the reward-vs-KL hull up to the KL cap / DPO's; >1 is",
            "better; every candidate and DPO get the same betas, batches and evaluation samples, seeds paired):",
        ),
    ),
    evaluation="preference",
    reference_label="DPO",
)
