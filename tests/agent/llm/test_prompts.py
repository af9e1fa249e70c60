"""Prompts: golden files, held-out tasks never shown, templates complete.

Golden files live in tests/agent/llm/golden/. After an intended change to a template, a baseline
or the prompt builder, regenerate them and review the diff:

    OPTFORGE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/agent/llm/test_prompts.py
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest

from optforge.agent.prompts import template
from optforge.agent.proposers.prompting import (
    build_messages,
    code_excerpt,
    repair_message,
    transcript,
)
from optforge.tasks.contracts import KINDS, check_source
from optforge.tasks.kinds import kind_spec
from optforge.tasks.preference.task import preference_task
from optforge.tasks.scaling.task import GAP_CAP, scaling_task
from optforge.tasks.scoring import AGGREGATE_CLIP
from optforge.tasks.suites import suite

from .samples import (
    GOOD_SOURCE,
    TIER2_TASKS,
    loss_request,
    optimizer_request,
    preference_request,
    scaling_request,
    schedule_request,
)

REQUESTS = {"optimizer": optimizer_request, "loss": loss_request, "schedule": schedule_request,
            "preference_loss": preference_request, "scaling_rule": scaling_request}

GOLDEN = pathlib.Path(__file__).parent / "golden"
UPDATE = os.environ.get("OPTFORGE_UPDATE_GOLDEN") == "1"
HISTORY_SIZE = 12

CASES = {
    "optimizer_rewrite": lambda: build_messages(optimizer_request(), "rewrite", HISTORY_SIZE),
    "optimizer_diff": lambda: build_messages(optimizer_request(), "diff", HISTORY_SIZE),
    "optimizer_crossover": lambda: build_messages(
        optimizer_request(parents=2), "rewrite", HISTORY_SIZE
    ),
    "loss_rewrite": lambda: build_messages(loss_request(), "rewrite", HISTORY_SIZE),
    "schedule_rewrite": lambda: build_messages(schedule_request(), "rewrite", HISTORY_SIZE),
    "preference_loss_rewrite": lambda: build_messages(preference_request(), "rewrite", HISTORY_SIZE),
    "scaling_rule_rewrite": lambda: build_messages(scaling_request(), "rewrite", HISTORY_SIZE),
    "repair_contract": lambda: (
        repair_message(
            ["line 1: import of 'os' is not allowed; use only math, torch"], diff_failed=False
        ),
    ),
    "repair_diff": lambda: (
        repair_message(
            ["block 1: the SEARCH text does not occur in the parent's code"], diff_failed=True
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_prompt_matches_its_golden_file(case):
    text = transcript(CASES[case]()) + "\n"
    path = GOLDEN / f"{case}.txt"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), (
        f"no golden file {path.name}: run with OPTFORGE_UPDATE_GOLDEN=1 to create it"
    )
    assert text == path.read_text(encoding="utf-8"), (
        f"prompt {case} changed; if intended, regenerate with OPTFORGE_UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.mark.parametrize("mode", ["rewrite", "diff"])
@pytest.mark.parametrize("make", REQUESTS.values())
def test_held_out_tasks_never_appear_in_a_prompt(make, mode):
    request = make(tier2=True)  # feedback on tier-2 tasks slipped into the request
    text = transcript(build_messages(request, mode, HISTORY_SIZE))
    held_out = set(TIER2_TASKS) | {t.name for t in suite(2, request.kind)} | {scaling_task(2).name}
    assert [name for name in held_out if name in text] == []
    assert "3.50" not in text and "9.9" not in text  # nor their scores or frontier points


@pytest.mark.parametrize("kind", KINDS)
def test_the_system_prompt_lists_exactly_the_screen_tasks(kind):
    system = build_messages(REQUESTS[kind](), "rewrite", HISTORY_SIZE)[0].content
    listed = re.findall(r"^- (\w+): ", system, flags=re.M)
    if kind_spec(kind).evaluation == "scaling":  # one task, one result per width
        assert listed == [scaling_task(1).name]
    else:
        assert listed == [t.name for t in suite(1, kind)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_placeholder_is_filled(case):
    text = transcript(CASES[case]())
    assert re.search(r"\$\{?[A-Za-z_]", text) is None


def test_history_is_shown_lowest_score_first_and_capped():
    text = build_messages(optimizer_request(), "rewrite", 2)[1].content
    names = re.findall(r"^## (\w+): score", text.split("# The parent")[0], flags=re.M)
    assert names == ["plain_momentum", "best_so_far"]  # the two best, ascending (OPRO's order)


def test_history_excerpt_keeps_the_core_of_the_code():
    excerpt = code_excerpt(GOOD_SOURCE, "optimizer")
    assert excerpt.splitlines() == [
        'HPARAMS = {"lr": 0.0003, "beta": 0.9}',
        "def update(grad, param, state, step, hp):",
        '    m = hp["beta"] * state["m"] + (1 - hp["beta"]) * grad',
        '    return -hp["lr"] * torch.tanh(m / (m.abs().mean() + 1e-12)), {"m": m}',
    ]


def test_diff_mode_needs_exactly_one_parent():
    with pytest.raises(ValueError, match="diff mode edits one parent"):
        build_messages(optimizer_request(parents=2), "diff", HISTORY_SIZE)


def test_every_kind_has_a_system_and_a_user_template():
    for kind in KINDS:
        assert template(f"{kind}_system").template and template(f"{kind}_user").template
    with pytest.raises(ValueError, match="no prompt template 'nope'"):
        template("nope")


@pytest.mark.parametrize("kind", [k for k in KINDS if kind_spec(k).evaluation == "proxy"])
def test_the_system_prompt_describes_the_score_as_it_is_computed(kind):
    # The score is a loss (or error) ratio against tuned AdamW, aggregated with a per-task clip
    # that comes from the scorer itself (tasks/scoring.py), not a speed-up read off the curves.
    system = build_messages(REQUESTS[kind](), "rewrite", HISTORY_SIZE)[0].content
    assert f"clipped to between 1/{AGGREGATE_CLIP:g} and {AGGREGATE_CLIP:g}" in system
    assert "1.25 a 20% lower held-out" in system and "ratio" in system
    assert "one fixed grid of powers of two" in system


def test_the_preference_prompt_states_the_grid_and_cap_the_scorer_uses():
    system = build_messages(preference_request(), "rewrite", HISTORY_SIZE)[0].content
    task = preference_task(1)
    assert "at each beta in " + ", ".join(f"{b:g}" for b in task.betas) + " (" in system
    assert f"from 0 to {task.kl_cap:g} nats" in system and "divided by DPO's" in system
    user = build_messages(preference_request(), "rewrite", HISTORY_SIZE)[1].content
    assert "beta 0.1: KL 17.70, reward +0.380" in user  # the parent's frontier, next to DPO's
    assert "DPO:       beta 0.1: KL 13.10, reward +0.526" in user


def test_no_prompt_calls_the_score_a_speed_up():
    for case in CASES:
        text = transcript(CASES[case]()).lower()
        assert not re.search(r"speed-?up|faster than the reference|half the steps", text), case


def test_the_scaling_prompt_shows_each_width_gap_and_the_rule_values_but_nothing_held_out():
    system, user = (m.content for m in build_messages(scaling_request(tier2=True), "rewrite", HISTORY_SIZE))
    screen = scaling_task(1)
    # the parent's per-width gaps in nats (loss - tuned optimum), with the values the rule gave there
    assert "- stdlib_resmlp_w64: score 0.996, level with the reference" in user
    assert "held-out loss 1.432 nats, tuned optimum at this width 1.428: gap +0.004 nats" in user
    assert "gap -0.001 nats" in user and "gap +0.320 nats" in user
    assert "hidden 0.00565, 0.2; output 0.00565, 0.2; vector 0.0113, 0" in user  # width 64: lr / 2
    assert "hidden 0.00141, 0.2" in user  # width 256: lr / 8
    assert "note: seed 0 diverged at step 1500" in user
    assert "## mup_like: score 0.970 (ok)" in user  # three decimals: scores sit near 1.0
    # the held-out width, its result and the rule's values there never appear
    text = system + user
    held_out = [w for w in scaling_task(2).widths if w not in screen.widths]
    assert held_out and all(str(w) not in text for w in held_out)
    assert "heldout" not in text and "9.87" not in text and "0.000706" not in text
    # the recipe and guards come from the code that trains and checks
    assert f"batches of {screen.recipe.batch} windows for {screen.recipe.steps} steps" in system
    assert f"over {screen.recipe.warmup} steps" in system and "betas 0.9 and 0.95" in system
    assert f"capped at {GAP_CAP:g} nats" in system and "lr x weight_decay <= 0.05" in system
    assert "At each screened width (64, 128, 256)" in system
    assert "no faster than width^4" in system and "data do not grow with width" in system
    for group in ("embedding", "hidden", "output", "vector"):
        assert f'- "{group}": ' in system


# -- what a prompt leaves out, and fitting it to a context window ---------------------------------


def _seed(name: str, score: float, feedback=()):
    from optforge.agent.proposers.base import ParentInfo
    from optforge.tasks.baselines import baseline_source

    return ParentInfo(name * 4, name, baseline_source("loss", name), score, "ok", tuple(feedback))


def _campaign_start_request():
    """A loss campaign's first request: the seeds are the parent, the inspirations and the history,
    and the parent is the reference itself (its curves equal the reference's)."""
    from optforge.agent.proposers.base import ProposalRequest, TaskFeedback

    curve = tuple(1.0 / (k + 1) for k in range(11))
    same = TaskFeedback("mlp_digits", "ok", 1.0, curve=curve, reference_curve=curve)
    behind = TaskFeedback(
        "logreg_cancer", "ok", 0.9, curve=tuple(c * 1.1 for c in curve), reference_curve=curve
    )
    parent = _seed("cross_entropy", 1.0, (same, behind))
    others = (_seed("label_smoothing", 1.05), _seed("focal", 1.12))
    return ProposalRequest("loss", (parent,), others, (parent, *others))


def test_a_seed_shown_as_an_example_is_not_repeated_in_the_user_prompt():
    system, user = build_messages(_campaign_start_request(), "rewrite", HISTORY_SIZE)
    for name in ("label_smoothing", "focal"):
        assert f"the bundled example `{name}` shown above, unchanged" in user.content
        assert "GAMMA = 2.0" in system.content and "GAMMA = 2.0" not in user.content
    # the parent is shown in full once; the history entries keep their rank but not their excerpts
    parent_and_examples = user.content.split("# Your task")[0]
    assert parent_and_examples.count("def loss(") == 1
    assert "## focal: score 1.12 (ok)\n\n(its code is the bundled example `focal` above)" in user.content
    assert "## cross_entropy: score 1.00 (ok)\n\n(its code is shown in full below)" in user.content


def test_a_curve_equal_to_the_reference_is_one_line_and_long_curves_keep_six_points():
    _, user = build_messages(_campaign_start_request(), "rewrite", HISTORY_SIZE)
    text = user.content
    assert "- mlp_digits: score 1.00, level with the reference\n  held-out curve: the same" in text
    assert "held-out curve at 6 evenly spaced checkpoints" in text  # logreg_cancer's 11, thinned
    reference = next(x for x in text.splitlines() if x.strip().startswith("reference:"))
    # checkpoints 0, 2, 4, 6, 8 and 10 of 1 / (k + 1)
    assert reference.split(":")[1].split() == ["1", "0.333", "0.2", "0.143", "0.111", "0.0909"]


def test_a_context_budget_drops_history_then_inspirations_but_never_the_parent():
    from optforge.agent.proposers.prompting import estimated_tokens

    request = optimizer_request()
    full = build_messages(request, "rewrite", HISTORY_SIZE)
    size = estimated_tokens(full)
    assert build_messages(request, "rewrite", HISTORY_SIZE, budget_tokens=size) == full

    trimmed = build_messages(request, "rewrite", HISTORY_SIZE, budget_tokens=size - 50)
    assert estimated_tokens(trimmed) <= size - 50
    assert len(trimmed[1].content) < len(full[1].content)
    assert trimmed[0] == full[0]  # the system prompt (contract, examples) is never trimmed

    smallest = build_messages(request, "rewrite", HISTORY_SIZE, budget_tokens=10)
    user = smallest[1].content
    assert "# Earlier candidates" not in user and "for inspiration" not in user
    assert "## sign_momentum: score 1.12 (ok)" in user and "# Reply format" in user


def test_an_inspiration_is_shown_without_its_module_docstring_and_the_parent_verbatim():
    from optforge.agent.proposers.base import ParentInfo, ProposalRequest
    from optforge.tasks.baselines import baseline_source

    adafactor = baseline_source("optimizer", "adafactor")
    inspiration = ParentInfo("a" * 64, "adafactor_variant", adafactor + "\n# changed\n", 0.99, "ok")
    parent = ParentInfo("p" * 64, "adafactor_parent", adafactor + "\n# mine\n", 1.01, "ok")
    _, user = build_messages(
        ProposalRequest("optimizer", (parent,), (inspiration,)), "rewrite", HISTORY_SIZE
    )
    text = user.content
    assert text.count("Reference: Shazeer & Stern") == 1  # the parent's docstring only
    shown = text[text.index("## adafactor_variant: score 0.99") :]
    assert '"""' not in shown.split("# Your task")[0] and "def update(" in shown


@pytest.mark.parametrize("kind", KINDS)
def test_the_reply_format_restates_the_required_definitions_and_they_meet_the_contract(kind):
    from optforge.agent.proposers.prompting import required_definitions

    _, user = build_messages(REQUESTS[kind](), "rewrite", HISTORY_SIZE)
    line = required_definitions(kind)
    assert user.content.rstrip().endswith(line)
    # the signatures restated are exactly what the contract checks: a stub made of them passes
    # the static check (names and arities)
    stub = "\n".join(
        f"{sig.strip('`')}:\n    return 0"
        for sig in re.findall(r"`def [^`]+`", line)
    )
    if kind == "optimizer":
        stub = 'HPARAMS = {"lr": 0.001}\n' + stub
    assert check_source("import torch\n" + stub + "\n", kind) == []
