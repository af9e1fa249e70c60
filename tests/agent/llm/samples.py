"""Fixed candidates, requests and model replies shared by the LLM tests."""

from __future__ import annotations

import json

from optforge.agent.proposers.base import ParentInfo, ProposalRequest, TaskFeedback

PARENT_SOURCE = """import torch

HPARAMS = {"lr": 0.0003, "beta": 0.9}


def init(param):
    return {"m": torch.zeros_like(param)}


def update(grad, param, state, step, hp):
    m = hp["beta"] * state["m"] + (1 - hp["beta"]) * grad
    return -hp["lr"] * torch.sign(m), {"m": m}
"""

GOOD_SOURCE = """import torch

HPARAMS = {"lr": 0.0003, "beta": 0.9}


def init(param):
    return {"m": torch.zeros_like(param)}


def update(grad, param, state, step, hp):
    # tanh instead of sign: small momenta take small steps
    m = hp["beta"] * state["m"] + (1 - hp["beta"]) * grad
    return -hp["lr"] * torch.tanh(m / (m.abs().mean() + 1e-12)), {"m": m}
"""

# Breaks the contract: an import outside the allow-list.
BROKEN_SOURCE = GOOD_SOURCE.replace("import torch\n", "import os\nimport torch\n", 1)

OTHER_PARENT_SOURCE = """import torch

HPARAMS = {"lr": 0.01, "momentum": 0.9}


def init(param):
    return {"buf": torch.zeros_like(param)}


def update(grad, param, state, step, hp):
    buf = hp["momentum"] * state["buf"] + grad
    return -hp["lr"] * buf, {"buf": buf}
"""

LOSS_SOURCE = """import torch.nn.functional as F


def loss(logits, targets):
    return F.cross_entropy(logits, targets)
"""

SCHEDULE_SOURCE = """def schedule(step, total_steps):
    return 1.0 - step / total_steps
"""

TIER2_TASKS = ("char_transformer", "mlp_digits_wide", "teacher_student_long")


def json_reply(
    code: str, *, name: str = "tanh_momentum", thought: str = "Use tanh for small steps."
) -> str:
    """A model reply in the requested format, with some prose and fences around it as models do."""
    body = json.dumps({"thought": thought, "name": name, "code": code}, indent=2)
    return f"Here is my proposal.\n\n```json\n{body}\n```\n"


def diff_reply(search: str, replace: str, *, name: str = "tanh_momentum") -> str:
    diff = f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE"
    return json.dumps({"thought": "Swap sign for tanh.", "name": name, "diff": diff})


def feedback(tier2: bool = False) -> tuple[TaskFeedback, ...]:
    items = (
        TaskFeedback(
            "mlp_digits",
            "ok",
            0.81,
            curve=(2.31, 1.2, 0.61, 0.4),
            reference_curve=(2.31, 0.9, 0.5, 0.35),
        ),
        TaskFeedback("logreg_cancer", "ok", 1.42),
        TaskFeedback("illcond_quadratic", "ok", 1.0),
        TaskFeedback(
            "deep_tanh_digits",
            "diverged",
            None,
            error="training loss became non-finite at step 40 (lr 0.0048)",
        ),
        TaskFeedback("teacher_student", "timeout", None),
    )
    if tier2:  # what a selection bug upstream could put here: the prompt must drop it
        items += tuple(
            TaskFeedback(name, "ok", 3.5, curve=(1.0, 0.5), reference_curve=(1.0, 0.7))
            for name in TIER2_TASKS
        )
    return items


def parent(
    source: str = PARENT_SOURCE, *, tier2: bool = False, name: str = "sign_momentum"
) -> ParentInfo:
    return ParentInfo("p" * 64, name, source, 1.12, "ok", feedback(tier2))


def history() -> tuple[ParentInfo, ...]:
    return (
        ParentInfo("h1" * 32, "best_so_far", GOOD_SOURCE, 1.31, "ok"),
        ParentInfo("h2" * 32, "plain_momentum", OTHER_PARENT_SOURCE, 0.64, "ok"),
        ParentInfo("h3" * 32, "broken_syntax", "def update(:\n", None, "invalid"),
        ParentInfo("h4" * 32, "diverges", PARENT_SOURCE.replace("0.0003", "3.0"), None, "diverged"),
    )


def optimizer_request(*, parents: int = 1, tier2: bool = False) -> ProposalRequest:
    chosen = (parent(tier2=tier2), parent(OTHER_PARENT_SOURCE, tier2=tier2, name="heavy_ball"))[
        :parents
    ]
    inspiration = ParentInfo("i" * 64, "heavy_ball_elite", OTHER_PARENT_SOURCE, 0.97, "ok")
    return ProposalRequest("optimizer", chosen, inspirations=(inspiration,), history=history())


def loss_request(*, tier2: bool = False) -> ProposalRequest:
    fb = tuple(
        f for f in feedback(tier2) if f.task != "illcond_quadratic" and f.task != "teacher_student"
    )
    p = ParentInfo("l" * 64, "plain_ce", LOSS_SOURCE, 1.0, "ok", fb)
    return ProposalRequest(
        "loss", (p,), history=(ParentInfo("lh" * 32, "plain_ce", LOSS_SOURCE, 1.0, "ok"),)
    )


PREFERENCE_SOURCE = """import torch.nn.functional as F


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    margin = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return F.softplus(-beta * margin)
"""

_DPO_POINTS = ((0.1, 13.1, 0.526), (0.3, 5.41, 0.449), (1.0, 2.22, 0.315), (3.0, 1.61, 0.248))


def preference_request(*, tier2: bool = False) -> ProposalRequest:
    fb = (
        TaskFeedback("shakespeare_vader", "ok", 0.93, frontier=((0.1, 17.7, 0.38), (0.3, 5.81, 0.412),
                     (1.0, 2.28, 0.298), (3.0, 1.73, 0.243)), reference_frontier=_DPO_POINTS),
    )
    if tier2:  # a selection bug upstream: the held-out tier's task and score must not reach the prompt
        fb += (TaskFeedback("shakespeare_vader_heldout", "ok", 3.5, frontier=((0.1, 9.9, 0.9),),
                            reference_frontier=_DPO_POINTS),)
    p = ParentInfo("d" * 64, "softplus_dpo", PREFERENCE_SOURCE, 0.93, "ok", fb)
    return ProposalRequest(
        "preference_loss", (p,), history=(ParentInfo("dh" * 32, "softplus_dpo", PREFERENCE_SOURCE, 0.93, "ok"),)
    )


def schedule_request(*, tier2: bool = False) -> ProposalRequest:
    p = ParentInfo("s" * 64, "linear", SCHEDULE_SOURCE, 1.05, "ok", feedback(tier2))
    return ProposalRequest("schedule", (p,))


SCALING_SOURCE = """def scale(width, base_width, group, base):
    ratio = width / base_width
    if group in ("hidden", "output"):
        return {"lr": base["lr"] / ratio, "weight_decay": base["weight_decay"]}
    return {"lr": base["lr"], "weight_decay": base["weight_decay"]}
"""


def _rule_values(width: int, base_width: int = 32) -> tuple[tuple[str, float, float], ...]:
    ratio = width / base_width
    return (("embedding", 0.0113, 0.2), ("hidden", 0.0113 / ratio, 0.2), ("output", 0.0113 / ratio, 0.2),
            ("vector", 0.0113, 0.0))


def scaling_request(*, tier2: bool = False) -> ProposalRequest:
    fb = (
        TaskFeedback("stdlib_resmlp_w64", "ok", 0.9960, final=1.4321, reference_final=1.4281,
                     hyperparameters=_rule_values(64)),
        TaskFeedback("stdlib_resmlp_w128", "ok", 1.0012, final=1.3377, reference_final=1.3389,
                     hyperparameters=_rule_values(128)),
        TaskFeedback("stdlib_resmlp_w256", "ok", 0.7261, final=1.6, reference_final=1.28,
                     error="seed 0 diverged at step 1500 (counted as the 0.5-nat cap)",
                     hyperparameters=_rule_values(256)),
    )
    if tier2:  # a selection bug upstream: the held-out width's result must not reach the prompt
        fb += (TaskFeedback("stdlib_resmlp_heldout_w512", "ok", 3.5, final=9.9, reference_final=9.87,
                            hyperparameters=_rule_values(512)),)
    p = ParentInfo("r" * 64, "mup_like", SCALING_SOURCE, 0.97, "ok", fb)
    return ProposalRequest(
        "scaling_rule", (p,), history=(ParentInfo("rh" * 32, "mup_like", SCALING_SOURCE, 0.97, "ok"),)
    )
