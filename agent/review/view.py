"""Reviewing a campaign's archive: ranking, one candidate in detail, diffs and lineage.

Pure reads, like agent/campaign/summary.py, which it builds on (the rows and the ranking are summary's, the
ranking score is the archive's `rank_score`): a campaign may be writing the same file meanwhile (WAL
lets another process read). Rendering lives in agent/cli/review_display.py, the commands in
agent/cli/review.py, the HTML report in agent/review/report.py.
"""

from __future__ import annotations

import difflib
import pathlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from optforge.agent.campaign.directory import archive_path
from optforge.agent.campaign.summary import CandidateRow, RankBy, candidate_row, ranked_rows
from optforge.agent.review.calls import NumberedCall, call_json
from optforge.archive import (
    AmbiguousIdError,
    ArchiveError,
    ArchiveStore,
    CandidateRecord,
    EvaluationRecord,
    LLMCallRecord,
    UnknownCandidateError,
)

LLM_PROPOSER_PREFIX = "llm"  # CandidateRecord.proposer of LLM candidates: "llm:<model>"


class ReviewError(Exception):
    """Bad input to a review command: printed as one line, exit status 2."""


@dataclass(frozen=True)
class ArchiveView:
    """Everything the review commands read, taken from the store once (one consistent picture
    even while a campaign keeps writing)."""

    path: pathlib.Path
    candidates: dict[str, CandidateRecord]  # id -> record, in the order stored
    evaluations: dict[str, tuple[EvaluationRecord, ...]]  # candidate id -> its evaluations
    rows: dict[str, CandidateRow]  # id -> summary row, in the order stored
    llm_calls: tuple[LLMCallRecord, ...] = ()
    children: dict[str, tuple[str, ...]] = field(default_factory=dict)  # id -> child ids
    llm_seqs: tuple[int, ...] = ()  # each of llm_calls' number in the store (empty: 1, 2, ...)

    def ranked(self, by: RankBy = "tier2") -> list[CandidateRow]:
        """Verified on tier 2 first ("tier2", the archive's ranking), or by tier 1 alone."""
        return ranked_rows(self.rows.values(), by)

    def seeds(self) -> list[CandidateRow]:
        return [r for r in self.rows.values() if r.is_seed]

    def evaluation(self, cid: str, tier: int) -> EvaluationRecord | None:
        return next((e for e in self.evaluations.get(cid, ()) if e.tier == tier), None)

    def numbered_calls(self, candidate_id: str | None = None) -> list[NumberedCall]:
        """The LLM calls with their numbers, in the order made; optionally one candidate's."""
        seqs = self.llm_seqs or tuple(range(1, len(self.llm_calls) + 1))
        return [
            NumberedCall(seq, call)
            for seq, call in zip(seqs, self.llm_calls, strict=True)
            if candidate_id is None or call.candidate_id == candidate_id
        ]


# -- opening ------------------------------------------------------------------------------------


@contextmanager
def opened(directory: pathlib.Path) -> Iterator[ArchiveStore]:
    """The archive of a campaign directory, or a ReviewError that says what to give instead.

    `ArchiveStore.open` only reads (its `journal_mode=WAL` is a no-op on an archive, which is
    always WAL); the review commands never call a write method."""
    if not directory.exists():
        raise ReviewError(
            f"no such directory: {directory} (give a campaign directory, e.g. runs/<name>)"
        )
    path = archive_path(directory) if directory.is_dir() else directory
    if not path.is_file():
        raise ReviewError(
            f"no campaign in {directory} (no {path.name}): give the directory of a campaign "
            f"started with `optforge run --dir DIR`"
        )
    try:
        store = ArchiveStore.open(path)
    except ArchiveError as exc:
        raise ReviewError(str(exc)) from None
    with store:
        yield store


def read_view(store: ArchiveStore) -> ArchiveView:
    candidates = {c.id: c for c in store.candidates()}
    numbered = store.numbered_llm_calls()
    evaluations: dict[str, list[EvaluationRecord]] = defaultdict(list)
    for e in store.evaluations():
        evaluations[e.candidate_id].append(e)
    children: dict[str, list[str]] = defaultdict(list)
    for c in candidates.values():
        for parent in c.parent_ids:
            children[parent].append(c.id)
    return ArchiveView(
        path=pathlib.Path(store.path),
        candidates=candidates,
        evaluations={cid: tuple(evs) for cid, evs in evaluations.items()},
        rows={cid: candidate_row(c, evaluations.get(cid, [])) for cid, c in candidates.items()},
        llm_calls=tuple(call for _, call in numbered),
        children={cid: tuple(kids) for cid, kids in children.items()},
        llm_seqs=tuple(seq for seq, _ in numbered),
    )


def resolve(store: ArchiveStore, prefix: str) -> CandidateRecord:
    """The candidate a (git-like, short) id names; a ReviewError when none or several do."""
    try:
        return store.find(prefix)
    except (UnknownCandidateError, AmbiguousIdError) as exc:
        hint = "" if isinstance(exc, AmbiguousIdError) else "; `optforge ls DIR` lists the ids"
        raise ReviewError(f"{exc}{hint}") from None


# -- ls -----------------------------------------------------------------------------------------


def ranking_ci(row: CandidateRow) -> tuple[float, float] | None:
    """The CI of the score the archive ranks by: tier 2's where it passed, else tier 1's."""
    return row.score_ci


def listed(
    view: ArchiveView,
    top: int | None = None,
    kind: str | None = None,
    status: str | None = None,
    by: RankBy = "tier2",
) -> list[tuple[int, CandidateRow]]:
    """(rank, row) best first; the rank is over the whole archive, so filters keep it."""
    ranked = list(enumerate(view.ranked(by), 1))
    chosen = [
        (rank, r)
        for rank, r in ranked
        if (kind is None or r.kind == kind) and (status is None or r.status == status)
    ]
    return chosen if top is None else chosen[: max(top, 0)]


def row_json(rank: int, row: CandidateRow, by: RankBy = "tier2") -> dict[str, Any]:
    return {
        "rank": rank,
        "ranked_by": by,
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "score": row.score,  # the archive's: tier 2's where it passed (`verified`), else tier 1's
        "score_ci": list(ci) if (ci := ranking_ci(row)) else None,
        "score_tier": row.score_tier,
        "verified": row.verified,
        "tier": row.tier,
        "status": row.status,
        "tier1_score": row.tier1_score,
        "tier1_ci": list(row.tier1_ci) if row.tier1_ci else None,
        "tier2_score": row.tier2_score,
        "tier2_ci": list(row.tier2_ci) if row.tier2_ci else None,
        "island": row.island,
        "generation": row.generation,
        "proposer": row.proposer,
        "parent_ids": list(row.parent_ids),
        "reused_from": row.reused_from,
        "is_seed": row.is_seed,
    }


# -- show ---------------------------------------------------------------------------------------


def first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0] if text and text.strip() else None


# How a tier's training jobs batched the candidate's members (tasks/vectorized.py), in words.
BATCHING_WORDS = {
    "vmap_lr": "all seeds and learning rates in one run",
    "vmap": "all seeds in one run per learning rate",
    "loop": "one seed at a time",
}


def batching_text(batching: str | None, note: str | None) -> str | None:
    """e.g. "vmap (all seeds in one run per learning rate; vmap_lr: update raised ...)"; None for a
    record from before batching modes were recorded."""
    if batching is None:
        return None
    words = BATCHING_WORDS.get(batching, batching)
    return f"{batching} ({words}; {note})" if note else f"{batching} ({words})"


def latest_batching(evaluations: Sequence[EvaluationRecord]) -> str | None:
    """The batching of a candidate's highest evaluated tier that recorded one, in words."""
    for e in sorted(evaluations, key=lambda e: -e.tier):
        if e.batching is not None:
            return f"tier {e.tier}: {batching_text(e.batching, e.batching_note)}"
    return None


def idea_of(candidate: CandidateRecord) -> tuple[str, str | None]:
    """(label, text) of what the proposer said it did: an LLM's stated idea ("idea"), a
    mutation's description ("change"). CandidateRecord.thought holds both; seeds have none."""
    if candidate.proposer.startswith(LLM_PROPOSER_PREFIX):
        return "idea", candidate.thought
    if candidate.proposer == "seed":
        return "origin", "a bundled baseline (seed)"
    return "change", candidate.thought


def task_scores(evaluation: EvaluationRecord | None) -> dict[str, float | None]:
    """Task name -> score at that tier (None for a failed task); the aggregate under the key ""."""
    if evaluation is None:
        return {}
    scores: dict[str, float | None] = {t.name: t.score for t in evaluation.tasks}
    scores[""] = evaluation.score
    return scores


def baseline_table(
    view: ArchiveView, candidate: CandidateRecord, tier: int
) -> list[tuple[CandidateRow, dict[str, float | None]]]:
    """The candidate, then each seed, with its aggregate ("") and per-task scores at `tier`."""
    rows = [view.rows[candidate.id]] + [r for r in view.seeds() if r.id != candidate.id]
    return [(r, task_scores(view.evaluation(r.id, tier))) for r in rows]


def detail_json(view: ArchiveView, candidate: CandidateRecord) -> dict[str, Any]:
    row = view.rows[candidate.id]
    rank = next((i for i, r in enumerate(view.ranked(), 1) if r.id == candidate.id), None)
    label, idea = idea_of(candidate)
    return {
        **row_json(rank or 0, row),
        "source": candidate.source,
        "thought": candidate.thought,
        "idea_label": label,
        "idea": idea,
        "children": list(view.children.get(candidate.id, ())),
        "evaluations": [_evaluation_json(e) for e in view.evaluations.get(candidate.id, ())],
        "baselines": {
            str(tier): {r.name: scores for r, scores in baseline_table(view, candidate, tier)[1:]}
            for tier in (1, 2)
        },
        "created_at": candidate.created_at,
        # Every call of the proposal that made it, a rejected first reply included (without the
        # prompts and replies: `optforge llm calls DIR --seq N --json` has them).
        "llm_calls": [call_json(n, view.candidates) for n in view.numbered_calls(candidate.id)],
    }


def _json_value(value: Any) -> Any:
    """As JSON gives it back: a CI is a list."""
    return list(value) if isinstance(value, tuple) else value


def _evaluation_json(e: EvaluationRecord) -> dict[str, Any]:
    tasks = [
        {
            k: _json_value(getattr(t, k))
            for k in (
                "name",
                "status",
                "score",
                "score_ci",
                "metric",
                "final",
                "reference_final",
                "error",
            )
        }
        for t in e.tasks
    ]
    return {
        "tier": e.tier,
        "status": e.status,
        "score": e.score,
        "score_ci": list(e.score_ci) if e.score_ci else None,
        "error": first_line(e.error),
        "seeds": e.seeds,
        "seconds": e.seconds,
        "batching": e.batching,
        "batching_note": e.batching_note,
        "reused_from": e.reused_from,
        "tasks": tasks,
    }


# -- diff ---------------------------------------------------------------------------------------


def diff_pair(
    store: ArchiveStore, first: str, second: str | None
) -> tuple[CandidateRecord, CandidateRecord]:
    """(old, new): `first` against `second`, or `first`'s first parent against `first`."""
    candidate = resolve(store, first)
    if second is not None:
        return candidate, resolve(store, second)
    if not candidate.parent_ids:
        what = "a seed (a bundled baseline)" if candidate.proposer == "seed" else "parentless"
        raise ReviewError(
            f"candidate {candidate.id[:12]} ({candidate.name}) is {what}: it has no parent to "
            f"diff against; give a second id: optforge diff {store.path.parent} {candidate.id[:12]} OTHER_ID"
        )
    parent = store.candidate(candidate.parent_ids[0])
    assert parent is not None, "the store keeps parents before their children"
    return parent, candidate


def unified_diff(old: CandidateRecord, new: CandidateRecord, context: int = 3) -> list[str]:
    """A unified diff of the two sources, labelled with short ids and names (lines keep no '\\n')."""
    return list(
        difflib.unified_diff(
            old.source.splitlines(),
            new.source.splitlines(),
            fromfile=f"a/{old.id[:12]} {old.name}",
            tofile=f"b/{new.id[:12]} {new.name}",
            n=context,
            lineterm="",
        )
    )


# -- lineage ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineageNode:
    row: CandidateRow
    parents: tuple[LineageNode, ...] = ()
    repeat: bool = False  # already shown elsewhere in the tree (crossover makes a DAG)


def lineage(view: ArchiveView, cid: str) -> LineageNode:
    """The ancestry of `cid` as a tree (root: the candidate; below each node: its parents).

    Crossover children have two parents, so ancestries form a DAG; an ancestor reached a second
    time is marked `repeat` instead of being expanded again (which could grow exponentially)."""
    seen: set[str] = set()

    def node(current: str) -> LineageNode:
        if current in seen:
            return LineageNode(view.rows[current], repeat=True)
        seen.add(current)
        parents = view.candidates[current].parent_ids
        return LineageNode(view.rows[current], tuple(node(p) for p in parents))

    return node(cid)


def lineage_json(node: LineageNode) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": node.row.id,
        "name": node.row.name,
        "score": node.row.score,
        "score_tier": node.row.score_tier,
        "status": node.row.status,
        "tier": node.row.tier,
        "proposer": node.row.proposer,
        "generation": node.row.generation,
        "parents": [lineage_json(p) for p in node.parents],
    }
    if node.repeat:
        data["repeat"] = True
    return data
