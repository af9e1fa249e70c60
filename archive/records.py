"""The archive's frozen records, defined once (DESIGN.md, principle 12).

The archive imports nothing from the agent, tasks or sandbox: the agent converts its own objects
(Proposal, Evaluation, LLMCall) into these records. Every record round-trips through the store
unchanged: JSON-bearing fields are normalized to their JSON form at construction (tuples inside
dicts become lists), so a record read back compares equal to the one written, and a value that
cannot be stored fails here, in the caller's code, not later inside a transaction.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

TIERS = (0, 1, 2)


def normalize_source(source: str) -> str:
    """Source with formatting, comments and docstrings removed, so cosmetic edits hash the same.

    Uses `ast.unparse`; source that does not parse falls back to its stripped text (with trailing
    whitespace removed per line) so that broken candidates still get a stable id."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # ValueError: source containing NUL bytes
        return "\n".join(line.rstrip() for line in source.strip().splitlines())
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            _drop_docstring(node)
    return ast.unparse(tree)


def _drop_docstring(
    node: ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
) -> None:
    body = node.body
    first = body[0].value if body and isinstance(body[0], ast.Expr) else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        # A function whose body was only a docstring still needs a statement to unparse validly.
        node.body = body[1:] or [ast.Pass()]


def candidate_id(source: str) -> str:
    """Content-hash id of a candidate: sha256 (hex) of its normalized source."""
    return hashlib.sha256(normalize_source(source).encode("utf-8")).hexdigest()


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 (hex) of a JSON-able mapping in canonical form (sorted keys, no whitespace)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_form(value: Any, what: str) -> Any:
    """`value` as it comes back from JSON; a clear error for what JSON cannot hold."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serializable: {exc}") from None


def _task(value: TaskResult | Mapping[str, Any]) -> TaskResult:
    """A task result, from one or from its JSON form (as read back from the file); checked to be
    JSON-serializable, so what is stored is what reads back."""
    if isinstance(value, TaskResult):
        _json_form(dataclasses.asdict(value), "tasks")
        return value
    # Its JSON form (every read from the file comes this way): checked once, here.
    data = _json_form(dict(value), "tasks")
    missing = [name for name in ("name", "status", "metric") if name not in data]
    if missing:
        raise TypeError(f"tasks: a task needs name, status and metric; this one lacks {', '.join(missing)}")
    return TaskResult.from_json(data)


def _ci(value: Any, what: str) -> tuple[float, float] | None:
    if value is None:
        return None
    lo, hi = value  # a list read back from JSON or a tuple: both become a tuple of floats
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"{what} must not contain NaN: a failure is a status, never a number")
    return (float(lo), float(hi))


@dataclass(frozen=True)
class CandidateRecord:
    """A candidate program and the provenance that produced it. Build new ones with `new`."""

    id: str  # candidate_id(source)
    kind: str  # "optimizer", "loss", "schedule", ...
    name: str
    source: str
    parent_ids: tuple[str, ...] = ()
    island: int = 0  # the island it was born on; later placements are events (see selection)
    generation: int = 0
    proposer: str = ""  # "seed", "mutate", "llm:<model>", ...
    thought: str | None = None
    prompt: str | None = None
    reply: str | None = None
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parent_ids", tuple(self.parent_ids))
        if self.island < 0 or self.generation < 0:
            raise ValueError(
                f"island and generation must be >= 0, got {self.island}, {self.generation}"
            )

    @classmethod
    def new(cls, source: str, kind: str, name: str, **fields: Any) -> CandidateRecord:
        """A record whose id is computed from `source` (the only way ids should be made)."""
        return cls(id=candidate_id(source), kind=kind, name=name, source=source, **fields)


@dataclass(frozen=True)
class TaskResult:
    """One task of one tier's evaluation, as scored (agent/evaluation/evaluate.py fills it in).

    Stored as a JSON object in its evaluation's `tasks` column; `from_json` reads it back, also
    from archives written before a field existed (it takes its default)."""

    name: str
    status: str  # "ok", "diverged", "error", "timeout", "oom", "crashed", "sandbox_error"
    metric: str
    score: float | None = None
    score_ci: tuple[float, float] | None = None
    final: float | None = None  # candidate's mean held-out metric at the end of the budget
    final_ci: tuple[float, float] | None = None
    reference_final: float | None = None  # tuned AdamW's
    paired_diff_ci: tuple[float, float] | None = None  # CI of (candidate - AdamW) final, paired by seed
    lr: float | None = None  # candidate's best learning rate
    reference_lr: float | None = None
    error: str | None = None
    seconds: float = 0.0  # sandbox time of the candidate's jobs on this task
    seed_finals: tuple[float, ...] = ()  # final held-out metric per seed (paired comparisons)
    curve: tuple[float, ...] = ()  # mean held-out metric at each checkpoint, at the best lr
    reference_curve: tuple[float, ...] = ()  # tuned AdamW's, same checkpoints
    # The preference task's (beta, KL, reward) per beta, averaged over seeds, and its reference's (DPO)
    frontier: tuple[tuple[float, float, float], ...] = ()
    reference_frontier: tuple[tuple[float, float, float], ...] = ()
    # The scaling task's: the rule's (group, lr, weight decay) at this task's width (what it trained with)
    hyperparameters: tuple[tuple[str, float, float], ...] = ()

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> TaskResult:
        known = {f.name for f in fields(cls)}
        kept = {k: v for k, v in value.items() if k in known}
        for name in ("score_ci", "final_ci", "paired_diff_ci"):
            if kept.get(name) is not None:
                kept[name] = tuple(kept[name])
        for name in ("seed_finals", "curve", "reference_curve"):
            kept[name] = tuple(kept.get(name) or ())
        for name in ("frontier", "reference_frontier", "hyperparameters"):
            kept[name] = tuple(tuple(point) for point in kept.get(name) or ())
        return cls(**kept)


@dataclass(frozen=True)
class EvaluationRecord:
    """One tier's evaluation of one candidate: at most one per (candidate, tier), never updated.

    `tasks` holds one `TaskResult` per task (JSON objects in the file); `descriptors` are
    behaviour descriptors measured by the agent for selection (e.g. {"state_tensors": 2}).
    `reused_from` names the candidate whose evaluation was copied when this one was deduplicated by
    its tier-0 fingerprint (then `seconds` is 0: it cost no evaluation).
    """

    candidate_id: str
    tier: int
    status: str  # "ok" or a failure status; a failure never carries a sentinel score
    score: float | None = None
    score_ci: tuple[float, float] | None = None
    error: str | None = None
    tasks: tuple[TaskResult, ...] = field(default=(), hash=False)
    fingerprint: str | None = None
    # Archives before schema 3 only: whether seeds were stacked into one run. Newer records say how
    # members (seeds x learning rates) were batched instead, and why not more (the first error line).
    batch_safe: bool | None = None
    batching: str | None = None  # "vmap_lr", "vmap" or "loop" (tasks/vectorized.py)
    batching_note: str | None = None
    seeds: int = 0
    learning_rates: tuple[float, ...] = ()
    task_versions: dict[str, str] = field(default_factory=dict, hash=False)
    descriptors: dict[str, float] = field(default_factory=dict, hash=False)
    code_commit: str | None = None
    config_hash: str = ""
    # Where it ran, e.g. {"sandbox": "docker", "image": tag, "image_id": "sha256:..."}.
    environment: dict[str, str] = field(default_factory=dict, hash=False)
    reused_from: str | None = None
    seconds: float = 0.0
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}, got {self.tier!r}")
        if self.score is not None and not math.isfinite(self.score):
            raise ValueError(f"score must be finite or None, got {self.score!r}")
        set_ = object.__setattr__  # frozen: normalize once, here
        set_(self, "score_ci", _ci(self.score_ci, "score_ci"))
        set_(self, "tasks", tuple(_task(t) for t in self.tasks))
        set_(self, "learning_rates", tuple(float(lr) for lr in self.learning_rates))
        set_(self, "task_versions", _json_form(dict(self.task_versions), "task_versions"))
        set_(self, "descriptors", _json_form(dict(self.descriptors), "descriptors"))
        set_(self, "environment", _json_form(dict(self.environment), "environment"))

    @property
    def passed(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class LLMCallRecord:
    """One language-model call, recorded whether or not it produced a candidate (never the key:
    a prompt holds the conversation sent, never a request header).

    `candidate_id`: the candidate of the proposal the call belongs to, set for every call of a
    proposal that produced one (the rejected first reply of a repaired proposal included); None when
    the proposal failed or its reply went unused. `rejected`: why the proposer could not use the
    reply, one line (None for a reply it used, and for a failed request, which has `error`).
    Archives before schema 4 kept no prompt, reply or reason: None in all three."""

    candidate_id: str | None
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None  # None when the provider's price is unknown
    latency_s: float = 0.0
    error: str | None = None  # the request failed (every attempt): how; then `reply` is None
    rejected: str | None = None
    prompt: str | None = None  # the request's messages as "[role]\ncontent" blocks
    reply: str | None = None  # the reply's text, as the model wrote it
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class EventRecord:
    """A campaign event: "start", "resume", "stop", "interrupted", "seed", "migration", ..."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict, hash=False)
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", _json_form(dict(self.data), "event data"))
