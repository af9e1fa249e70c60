"""Fill the templates of agent/prompts/ from a ProposalRequest. No prompt prose lives here.

Pure functions: the same request always gives the same prompt (golden tests hold us to it).
Held-out (tier-2) results never reach a prompt: a request only carries tier-1 data by construction,
and per-task feedback is filtered again here to the kind's tier-1 tasks, so a mistake upstream
cannot leak a held-out task's name or metric.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import math
from collections.abc import Sequence
from functools import cache
from typing import Literal

from optforge.agent.llm.client import Message
from optforge.agent.llm.client import transcript as transcript  # re-exported
from optforge.agent.prompts import render
from optforge.agent.proposers.base import ParentInfo, ProposalRequest, TaskFeedback
from optforge.agent.proposers.kinds import proposal_kind
from optforge.tasks.adapters import MAX_LR_TIMES_WD, SCALING_GROUPS
from optforge.tasks.baselines import baseline_source
from optforge.tasks.kinds import kind_spec
from optforge.tasks.kinds.scaling_rule import MAX_EXPONENT
from optforge.tasks.preference.task import PreferenceTask, preference_task
from optforge.tasks.proxy import ProxyTask
from optforge.tasks.scaling import corpus, model
from optforge.tasks.scaling.task import GAP_CAP, ScalingTask, scaling_task
from optforge.tasks.scoring import AGGREGATE_CLIP
from optforge.tasks.suites import suite

log = logging.getLogger(__name__)

Mode = Literal["rewrite", "diff"]

EXCERPT_LINES = 12
# Our prompts measured 3.2-3.5 characters per token with SmolLM2's tokenizer
# (benchmarks/prompt_sizes.py); GPT-style tokenizers give more. 3 keeps the estimate above the truth.
CHARS_PER_TOKEN = 3
TEMPLATE_TOKENS_PER_MESSAGE = 8
CURVE_POINTS = 6
# Within this of 1.0 a task score reads as "level" (scores are shown with two decimals).
LEVEL_TOLERANCE = 0.005


def build_messages(
    request: ProposalRequest, mode: Mode, history_size: int, *, budget_tokens: int | None = None
) -> tuple[Message, ...]:
    """The system and user messages asking for a new candidate of `request.kind`.

    `budget_tokens`: the most the prompt may take of the model's context window (the window minus
    the reply's max_tokens), or None for no limit. Over it, what costs the most for the least is
    left out first: the history's weakest entries (halving it), then the inspirations. The
    contract, the examples, the parents and the reply format always stay: without them a reply
    cannot be a candidate.
    """
    if mode == "diff" and len(request.parents) != 1:
        raise ValueError(f"diff mode edits one parent, the request has {len(request.parents)}")
    system = Message("system", system_prompt(request.kind))
    user = Message("user", user_prompt(request, mode, history_size))
    if budget_tokens is None:
        return system, user
    while estimated_tokens((system, user)) > budget_tokens:
        if history_size > 0 and request.history:
            history_size //= 2
        elif request.inspirations:
            request = dataclasses.replace(request, inspirations=request.inspirations[:-1])
        else:
            break  # nothing optional left: send it, and let the server say it is too long
        user = Message("user", user_prompt(request, mode, history_size))
    return system, user


def estimated_tokens(messages: Sequence[Message]) -> int:
    """An upper estimate of the prompt's tokens: CHARS_PER_TOKEN characters each, plus a little
    per message for the chat template."""
    return sum(len(m.content) // CHARS_PER_TOKEN + TEMPLATE_TOKENS_PER_MESSAGE for m in messages)


@cache
def system_prompt(kind: str) -> str:
    tasks = "\n".join(
        render(
            "task_line",
            name=t.name,
            description=t.description,
            steps=t.recipe.steps if isinstance(t, ScalingTask) else t.steps,
            batch_size=t.recipe.batch if isinstance(t, ScalingTask) else t.batch_size,
        )
        for t in _screen_tasks(kind)
    )
    examples = "\n\n".join(
        render("example", name=name, source=baseline_source(kind, name).strip("\n"))
        for name in proposal_kind(kind).examples
    )
    # The clip (and the preference and scaling tasks' recipes) are substituted from the scorer, so
    # the prompt cannot drift from what is computed.
    task = preference_task(1)
    return render(
        f"{kind}_system", tasks=tasks, examples=examples, clip=f"{AGGREGATE_CLIP:g}",
        betas=", ".join(f"{b:g}" for b in task.betas), kl_cap=f"{task.kl_cap:g}", lr=f"{task.recipe.lr:g}",
        steps=task.recipe.steps, batch=task.recipe.batch_pairs, chars=task.prepare.continuation_chars,
        **_scaling_facts(),
    )


def _scaling_facts() -> dict[str, object]:
    """The scaling task's screen and recipe, for the scaling_rule prompt (tier 1 only: the held-out
    width is never named)."""
    task = scaling_task(1)
    recipe = task.recipe
    return {
        "widths": ", ".join(str(w) for w in task.widths), "base_width": task.base_width,
        "groups": ", ".join(f'"{g}"' for g in SCALING_GROUPS), "max_lr_wd": f"{MAX_LR_TIMES_WD:g}",
        "gap_cap": f"{GAP_CAP:g}", "max_exponent": f"{MAX_EXPONENT:g}", "scaling_steps": recipe.steps,
        "scaling_batch": recipe.batch, "warmup": recipe.warmup, "beta1": f"{recipe.beta1:g}",
        "beta2": f"{recipe.beta2:g}", "eps": f"{recipe.eps:g}", "context": model.CONTEXT,
        "blocks": model.BLOCKS, "expansion": model.EXPANSION, "vocab": len(corpus.VOCAB),
        "python": corpus.STDLIB_VERSION,
    }


def _screen_tasks(kind: str) -> list[ProxyTask] | list[PreferenceTask] | list[ScalingTask]:
    """The screen's tasks as the system prompt lists them."""
    return suite(1, kind)


def _screen_names(kind: str) -> frozenset[str]:
    """The names of the screen's results a prompt may show: a task's, or each width's of the
    scaling task (one result per width)."""
    return frozenset(
        name
        for t in _screen_tasks(kind)
        for name in ([t.width_task(w) for w in t.widths] if isinstance(t, ScalingTask) else [t.name])
    )


def user_prompt(request: ProposalRequest, mode: Mode, history_size: int) -> str:
    screen = _screen_names(request.kind)
    digits = _score_digits(request.kind)
    examples = _example_names(request.kind)
    return render(
        f"{request.kind}_user",
        history=_section(_history(request, history_size, digits, examples)),
        parents=_section(_parents(request.parents, screen, digits)),
        inspirations=_section(_inspirations(request.inspirations, digits, examples)),
        reply_format=render(
            "reply_diff" if mode == "diff" else "reply_rewrite",
            required=required_definitions(request.kind),
        ),
    )


@cache
def required_definitions(kind: str) -> str:
    """The contract's required definitions, restated next to the reply format: the signatures as
    the kind's first example writes them. Small models lose the contract over a 3,000-token prompt
    (SmolLM2-135M wrote loss-like functions under other names in 8 of 8 replies); a sentence at the
    end, where the reply starts, costs about 30 tokens."""
    contract = kind_spec(kind).contract
    example = ast.parse(baseline_source(kind, proposal_kind(kind).examples[0]))
    signatures = {
        node.name: f"def {node.name}({', '.join(a.arg for a in node.args.args)})"
        for node in example.body
        if isinstance(node, ast.FunctionDef) and node.name in contract.functions
    }
    parts = [f"`{signatures.get(name, name)}`" for name in contract.functions]
    if contract.hparams:
        parts.insert(0, '`HPARAMS` (a dict of numbers with "lr")')
    listed = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    return f"The module must define {listed} at the top level, exactly with these names."


@cache
def _example_names(kind: str) -> dict[str, str]:
    """The system prompt's examples by their source as shown, so that the user prompt can point at
    one instead of repeating it (at a campaign's start every inspiration is a seed, i.e. an
    example: the loss prompt carried each of its three examples twice)."""
    return {
        baseline_source(kind, name).strip("\n"): name for name in proposal_kind(kind).examples
    }


def repair_message(errors: Sequence[str], *, diff_failed: bool) -> Message:
    """The follow-up after an unusable reply: its errors, and a request for the complete module."""
    lines = "\n".join(f"- {e}" for e in errors)
    return Message("user", render("repair_diff" if diff_failed else "repair", errors=lines))


def _section(text: str) -> str:
    return f"{text}\n\n" if text else ""


def _history(
    request: ProposalRequest, size: int, digits: int, examples: dict[str, str]
) -> str:
    if size <= 0 or not request.history:
        return ""
    # OPRO shows earlier solutions in ascending order of score, so the best sit next to the
    # instruction; it reported this order works better than descending. Unscored ones come first.
    best = sorted(request.history, key=_score_key, reverse=True)[:size]
    # A parent's code follows in full, and an example's is in the system prompt: their entries
    # keep their place in the ranking, not their excerpts.
    parents = {p.id for p in request.parents}

    def shown_where(h: ParentInfo) -> str | None:
        if h.id in parents:
            return "its code is shown in full below"
        example = examples.get(h.source.strip("\n"))
        return f"its code is the bundled example `{example}` above" if example else None

    entries = "\n\n".join(
        render(
            "history_entry_shown",
            name=h.name, score=_score(h.score, digits), status=h.status, where=where,
        )
        if (where := shown_where(h)) is not None
        else render(
            "history_entry",
            name=h.name,
            score=_score(h.score, digits),
            status=h.status,
            excerpt=code_excerpt(h.source, request.kind),
        )
        for h in reversed(best)
    )
    return render("history", entries=entries)


def _score_key(info: ParentInfo) -> float:
    return info.score if info.score is not None and math.isfinite(info.score) else -math.inf


def _parents(parents: Sequence[ParentInfo], screen: frozenset[str], digits: int = 2) -> str:
    if not parents:
        return ""
    shown = "\n\n".join(
        render(
            "parent",
            name=p.name,
            score=_score(p.score, digits),
            status=p.status,
            source=p.source.strip("\n"),
            feedback=_feedback(p.feedback, screen, digits),
        )
        for p in parents
    )
    if len(parents) == 1:
        return render("parents_one", parents=shown)
    return render("parents_many", parents=shown, count=len(parents))


def _inspirations(
    inspirations: Sequence[ParentInfo], digits: int, examples: dict[str, str]
) -> str:
    if not inspirations:
        return ""
    entries = "\n\n".join(
        render(
            "inspiration_example",
            name=i.name,
            score=_score(i.score, digits),
            example=examples[i.source.strip("\n")],
        )
        if i.source.strip("\n") in examples
        else render(
            "inspiration",
            name=i.name,
            score=_score(i.score, digits),
            source=without_module_docstring(i.source).strip("\n"),
        )
        for i in inspirations
    )
    return render("inspirations", entries=entries)


def _feedback(feedback: Sequence[TaskFeedback], screen: frozenset[str], digits: int = 2) -> str:
    kept = [f for f in feedback if f.task in screen]
    if len(kept) < len(feedback):
        dropped = sorted({f.task for f in feedback} - screen)
        log.warning(
            "dropped feedback on non-screen tasks %s: held-out results never enter prompts", dropped
        )
    if not kept:
        return render("feedback_none")
    return render("feedback", lines="\n".join(_feedback_lines(f, digits) for f in kept))


def _feedback_lines(f: TaskFeedback, digits: int = 2) -> str:
    if f.status == "ok" and f.score is not None:
        verdict = (
            "feedback_level"
            if abs(f.score - 1.0) < LEVEL_TOLERANCE
            else "feedback_ahead"
            if f.score > 1.0
            else "feedback_behind"
        )
        line = render(verdict, task=f.task, score=_score(f.score, digits))
    elif f.error:
        line = render("feedback_failed", task=f.task, status=f.status, error=f.error)
    else:
        line = render("feedback_status", task=f.task, status=f.status)
    if f.curve and tuple(f.curve) == tuple(f.reference_curve):
        # The reference itself (or its twin): three lines of numbers would say nothing more.
        line += "\n" + render("feedback_curve_same")
    elif f.curve and len(f.curve) == len(f.reference_curve):
        curve, reference = _checkpoints(f.curve), _checkpoints(f.reference_curve)
        line += "\n" + render(
            "feedback_curve",
            count=len(curve),
            curve=_numbers(curve),
            reference=_numbers(reference),
            gaps=" ".join(_gap(c, r) for c, r in zip(curve, reference, strict=True)),
        )
    if f.frontier:
        line += "\n" + render(
            "feedback_frontier", points=_points(f.frontier), reference=_points(f.reference_frontier)
        )
    if f.hyperparameters:
        line += "\n" + render(
            "feedback_widths",
            loss=_nats(f.final),
            reference=_nats(f.reference_final),
            gap=_nats_gap(f.final, f.reference_final),
            groups="; ".join(f"{g} {lr:.3g}, {wd:.3g}" for g, lr, wd in f.hyperparameters),
        )
        if f.status == "ok" and f.error:  # a seed that diverged, counted at the cap
            line += "\n" + render("feedback_note", error=f.error)
    return line


def _checkpoints(curve: Sequence[float]) -> tuple[float, ...]:
    """At most CURVE_POINTS evenly spaced checkpoints of `curve`, its first and last included: the
    shape of a gap (early, late, widening) shows at 6 points as well as at 11, for half the tokens."""
    if len(curve) <= CURVE_POINTS:
        return tuple(curve)
    last = len(curve) - 1
    return tuple(curve[round(k * last / (CURVE_POINTS - 1))] for k in range(CURVE_POINTS))


def _nats(value: float | None) -> str:
    return "none" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _nats_gap(value: float | None, reference: float | None) -> str:
    """The loss minus the tuned optimum's, in nats; positive means the candidate is behind."""
    if value is None or reference is None or not (math.isfinite(value) and math.isfinite(reference)):
        return "?"
    return f"{value - reference:+.3f}"


def _points(points: Sequence[tuple[float, float, float]]) -> str:
    return "; ".join(f"beta {b:g}: KL {kl:.2f}, reward {r:+.3f}" for b, kl, r in points) or "none"


def _score(score: float | None, digits: int = 2) -> str:
    return "none" if score is None or not math.isfinite(score) else f"{score:.{digits}f}"


def _score_digits(kind: str) -> int:
    """Decimals of the scores a prompt shows: two, but three for scaling rules, whose scores sit
    within a few thousandths of 1.0 (exp(-gap), gaps of thousandths of a nat)."""
    return 3 if kind_spec(kind).evaluation == "scaling" else 2


def _numbers(values: Sequence[float]) -> str:
    return " ".join(f"{v:.3g}" for v in values)


def _gap(candidate: float, reference: float) -> str:
    """Relative difference in percent; positive means the candidate is behind (lower is better)."""
    if not (math.isfinite(candidate) and math.isfinite(reference)) or reference == 0:
        return "?"
    return f"{100 * (candidate - reference) / abs(reference):+.0f}%"


def without_module_docstring(source: str) -> str:
    """`source` minus its module docstring. An inspiration is there for its code: a bundled
    baseline's docstring is a literature summary (Adafactor's is 1.7 kB of its 3.7 kB), while the
    parent, which a diff edits line by line, is always shown verbatim."""
    try:
        docstring = _docstring(ast.parse(source).body)
    except SyntaxError:
        return source
    if docstring is None:
        return source
    lines = source.split("\n")
    end = docstring.end_lineno or docstring.lineno
    return "\n".join(lines[: docstring.lineno - 1] + lines[end:]).lstrip("\n")


def _docstring(body: Sequence[ast.stmt]) -> ast.Expr | None:
    """The docstring statement of a module or function body (its first statement, a string)."""
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first
    return None


def code_excerpt(source: str, kind: str) -> str:
    """The core of a candidate for a history entry: an optimizer's HPARAMS line and the body of
    its core function, without docstrings, comments or blank lines, at most EXCERPT_LINES lines."""
    lines = source.splitlines()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return _clip(lines)
    keep: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "HPARAMS" for t in node.targets
        ):
            keep += lines[node.lineno - 1 : node.end_lineno]
        if isinstance(node, ast.FunctionDef) and node.name == kind_spec(kind).main_function:
            keep += _function_lines(node, lines)
    return _clip(keep or lines)


def _function_lines(node: ast.FunctionDef, lines: list[str]) -> list[str]:
    skip: set[int] = set()
    docstring = _docstring(node.body)
    if docstring is not None:
        skip = set(range(docstring.lineno, (docstring.end_lineno or docstring.lineno) + 1))
    start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    return [
        lines[i - 1]
        for i in range(start, (node.end_lineno or node.lineno) + 1)
        if i not in skip and lines[i - 1].strip() and not lines[i - 1].lstrip().startswith("#")
    ]


def _clip(lines: list[str]) -> str:
    kept = [line for line in lines if line.strip()]
    if len(kept) > EXCERPT_LINES:
        kept = kept[: EXCERPT_LINES - 1] + ["    ..."]
    return "\n".join(kept)
