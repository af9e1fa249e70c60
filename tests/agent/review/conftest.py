"""A small but realistic campaign archive for the review commands and the report.

Records are made the way the campaign makes them (agent/campaign/records.py): proposals become
candidate records, evaluations with `TaskResult`s (curves included) become evaluation records,
LLM calls are stored with their candidate. Scores are chosen so the ranking is known:

    cross 1.30 (t1) > llm_idea 1.10 (t2; 1.20 on t1) > mutant 1.05 > adamw 1.00 > crisscross 0.97
    > xss 0.95 > lion 0.909 > sgd 0.80; unscored: broken (failed_tier0), diverger (diverged),
    pending (never evaluated).
"""

from __future__ import annotations

import hashlib
import pathlib
from dataclasses import dataclass, replace

import pytest

from optforge.agent.campaign.records import candidate_record, evaluation_record
from optforge.agent.config import CampaignConfig
from optforge.agent.proposers.base import Proposal
from optforge.archive import ArchiveStore, EvaluationRecord, EventRecord, LLMCallRecord, TaskResult

TIER1_TASKS = (("illcond_quadratic", "mse"), ("mlp_digits", "cross_entropy"))
TIER2_TASKS = (("char_transformer", "cross_entropy"),)
CHECKPOINTS = 11  # the initial weights and 10 evenly spaced checkpoints, as tasks/jobs.py returns
XSS_NAME = "<script>alert('name')</script>"
XSS_SOURCE_MARK = "</pre><script>alert('code')</script>"
LLM_IDEA = "Scale each step by how often the gradient sign agreed with momentum."


def source(name: str, body: str = "-hp['lr'] * grad") -> str:
    return (
        f'"""{name}: a test candidate."""\n'
        "import torch\n"
        "HPARAMS = {'lr': 0.001}\n\n"
        "def init(param):\n"
        "    return {}\n\n"
        "def update(grad, param, state, step, hp):\n"
        f"    return ({body}, state)\n"
        f"NAME = {name!r}\n"
    )


def curve(final: float, start: float = 2.0) -> tuple[float, ...]:
    """A decaying held-out curve from `start` to `final` over the checkpoints."""
    return tuple(final + (start - final) * 0.6**k for k in range(CHECKPOINTS - 1)) + (final,)


def task_result(
    name: str, metric: str, score: float | None, error: str | None = None
) -> TaskResult:
    reference = 0.5
    if score is None:
        return TaskResult(name, "diverged", metric, error=error, seconds=0.3)
    final = reference / score
    return TaskResult(
        name,
        "ok",
        metric,
        score=score,
        score_ci=(score * 0.95, score * 1.05),
        final=final,
        final_ci=(final * 0.97, final * 1.03),
        reference_final=reference,
        paired_diff_ci=(final - reference - 0.01, final - reference + 0.01),
        lr=0.004,
        reference_lr=0.001,
        seconds=1.5,
        seed_finals=(final * 0.99, final * 1.01),
        curve=curve(final),
        reference_curve=curve(reference),
    )


def evaluation(tier: int, scores: dict[str, float | None], error: str | None = None) -> EvaluationRecord:
    """A tier-1/2 evaluation: per-task scores, the aggregate their geometric mean (or a failure)."""
    tasks = TIER1_TASKS if tier == 1 else TIER2_TASKS
    results = [task_result(n, m, scores[n], error) for n, m in tasks]
    ok = all(r.status == "ok" for r in results)
    aggregate = None
    if ok:
        product = 1.0
        for r in results:
            product *= r.score or 1.0
        aggregate = product ** (1 / len(results))
    return EvaluationRecord(
        "",  # evaluation_record sets the candidate's id
        tier,
        "ok" if ok else "diverged",
        score=aggregate,
        score_ci=(aggregate * 0.95, aggregate * 1.05) if aggregate else None,
        tasks=results,
        error=None if ok else error,
        seeds=2,
        learning_rates=[0.00025, 0.001, 0.004],
        seconds=3.0,
    )


LOOP_NOTE = "vmap: optimizer candidate 'mutant': update raised RuntimeError: vmap: data-dependent control flow"


def tier0(status: str = "ok", error: str | None = None) -> EvaluationRecord:
    return EvaluationRecord(
        "", 0, status, error=error, fingerprint="f" * 16, batching="vmap_lr",
        descriptors={"state_tensors": 0},
    )


@dataclass(frozen=True)
class Built:
    directory: pathlib.Path
    ids: dict[str, str]  # candidate name (or "xss") -> full id

    @property
    def archive(self) -> pathlib.Path:
        return self.directory / "archive.sqlite"


class _Campaign:
    """Stores candidates and their evaluations through the real store, as the loop does."""

    def __init__(self, store: ArchiveStore) -> None:
        self.store = store
        self.ids: dict[str, str] = {}
        self.clock = 1_000_000.0

    def tick(self) -> float:
        self.clock += 30.0
        return self.clock

    def add(self, key: str, proposal: Proposal, island: int, generation: int) -> str:
        record = candidate_record(proposal, "optimizer", island, generation)
        record = replace(record, created_at=self.tick())
        calls = [replace(c, created_at=self.tick()) for c in proposal.llm_calls]
        self.store.add_candidate(record, calls)
        self.ids[key] = record.id
        return record.id

    def evaluate(self, key: str, *evaluations: EvaluationRecord) -> None:
        for ev in evaluations:
            rec = evaluation_record(self.ids[key], ev, code_commit="abc123", config_hash="h")
            self.store.add_evaluation(replace(rec, created_at=self.tick()))


def _llm(cost: float) -> tuple[LLMCallRecord, ...]:
    return (LLMCallRecord(None, "test-model", 1200, 300, cost, 2.0),)


def build_archive(directory: pathlib.Path, with_llm: bool = True) -> Built:
    directory.mkdir(parents=True, exist_ok=True)
    config = CampaignConfig().model_dump(mode="json")
    config["budget"]["max_candidates"] = 20
    with ArchiveStore.create(directory / "archive.sqlite", config) as store:
        store.add_event(EventRecord("start", {"proposer": "mix", "overrides": {}}, 999_999.0))
        c = _Campaign(store)
        _seeds(c)
        _children(c, with_llm)
        store.add_event(EventRecord("stop", {"reason": "budget reached"}, created_at=c.tick()))
        return Built(directory, dict(c.ids))


def _seeds(c: _Campaign) -> None:
    seeds = {"adamw": (1.0, 1.0), "lion": (1.25, 0.66), "sgd": (0.7, 0.914)}
    for i, (name, (quad, mlp)) in enumerate(seeds.items()):
        c.add(name, Proposal(source(name), name, "seed", ()), island=i % 2, generation=0)
        c.evaluate(name, tier0(), evaluation(1, {"illcond_quadratic": quad, "mlp_digits": mlp}))


def _children(c: _Campaign, with_llm: bool) -> None:
    ids = c.ids
    llm_proposer = "llm:test-model" if with_llm else "mutate"
    idea = LLM_IDEA if with_llm else "insert sign on grad"
    c.add(
        "llm_idea",
        Proposal(
            source("llm_idea", "-hp['lr'] * grad.sign()"),
            "llm_idea",
            llm_proposer,
            (ids["adamw"],),
            idea,
            llm_calls=_llm(0.012) if with_llm else (),
        ),
        0,
        1,
    )
    c.evaluate(
        "llm_idea",
        tier0(),
        evaluation(1, {"illcond_quadratic": 1.44, "mlp_digits": 1.0}),
        evaluation(2, {"char_transformer": 1.1}),
    )
    c.add(
        "mutant",
        Proposal(
            source("mutant", "-2 * hp['lr'] * grad"),
            "mutant",
            "mutate",
            (ids["lion"],),
            "swap 1 -> 2 in update",
        ),
        1,
        1,
    )
    # Its code reads a tensor as a Python number: vmap could not run it, so it trained seed by seed.
    looped = replace(evaluation(1, {"illcond_quadratic": 1.1025, "mlp_digits": 1.0}), batching="loop",
                     batching_note=LOOP_NOTE)
    c.evaluate("mutant", tier0(), looped)
    c.add(
        "broken",
        Proposal(
            source("broken", "grad / 0"), "broken", "mutate", (ids["sgd"],), "swap * -> / in update"
        ),
        0,
        1,
    )
    c.evaluate("broken", tier0("failed_tier0", "finite: update returned NaN or inf"))
    c.add(
        "cross",
        Proposal(
            source("cross", "-hp['lr'] * (grad.sign() + grad)"),
            "cross",
            "mutate",
            (ids["llm_idea"], ids["mutant"]),
            "crossover",
        ),
        0,
        2,
    )
    c.evaluate("cross", tier0(), evaluation(1, {"illcond_quadratic": 1.69, "mlp_digits": 1.0}))
    c.add(
        "crisscross",
        Proposal(
            source("crisscross", "-hp['lr'] * grad.sign() * 0.5"),
            "crisscross",
            "mutate",
            (ids["cross"], ids["llm_idea"]),
            "crossover",
        ),
        1,
        3,
    )
    c.evaluate(
        "crisscross", tier0(), evaluation(1, {"illcond_quadratic": 0.9409, "mlp_digits": 1.0})
    )
    c.add(
        "diverger",
        Proposal(
            source("diverger", "1e30 * grad"),
            "diverger",
            "mutate",
            (ids["mutant"],),
            "scale 1 -> 1e30",
        ),
        1,
        2,
    )
    error = "update produced inf at step 3\nTraceback (most recent call last): ..."
    c.evaluate(
        "diverger",
        tier0(),
        evaluation(1, {"illcond_quadratic": None, "mlp_digits": None}, error=error),
    )
    xss_source = (
        source("xss", "-hp['lr'] * grad") + f"# {XSS_SOURCE_MARK}\nX = {XSS_SOURCE_MARK!r}\n"
    )
    c.add(
        "xss",
        Proposal(
            xss_source,
            XSS_NAME,
            llm_proposer,
            (ids["adamw"],),
            None,
            llm_calls=_llm(0.02) if with_llm else (),
        ),
        0,
        4,
    )
    c.evaluate("xss", tier0(), evaluation(1, {"illcond_quadratic": 0.9025, "mlp_digits": 1.0}))
    c.add(
        "pending",
        Proposal(
            source("pending", "-0.5 * hp['lr'] * grad"),
            "pending",
            "mutate",
            (ids["cross"],),
            "scale 1 -> 0.5",
        ),
        1,
        4,
    )


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    return build_archive(tmp_path_factory.mktemp("review") / "campaign")


@pytest.fixture(scope="session")
def built_offline(tmp_path_factory) -> Built:
    """The same campaign without an LLM: no LLM calls, mutation proposals only."""
    return build_archive(tmp_path_factory.mktemp("review") / "offline", with_llm=False)
