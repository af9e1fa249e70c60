"""Parent selection: islands, a MAP-Elites grid per island, ranking, migration and promotion.

Pure functions over records with an injected `random.Random`, no I/O: the campaign reads the store,
calls `build_population`, samples, and writes what it decided (candidates, migration events).

Two scores per member, on purpose:
  - `score`, the archive's ranking: the tier-2 (held-out) score where a tier-2 evaluation exists,
    else the tier-1 score. Both are loss ratios against tuned AdamW (1.0 = as good), but tier-1
    scores run higher than tier-2 ones (the screen is easier to win than held-out tasks), so they do
    not share a scale: ranking is verified-first (`rank_key`): every member verified on tier 2
    (`verified`), by its tier-2 score, above every tier-1-only member, by its tier-1 score. A failed
    tier-2 evaluation leaves the member unranked (None) rather than falling back to tier 1: a
    candidate that breaks on held-out tasks is not an elite.
  - `prompt_score`, always tier 1. It is the only score a prompt may show: held-out (tier-2) data
    must never flow into prompts (DESIGN.md, principle 9), so the agent builds ParentInfo from it.
Selection uses `score`, so the held-out tier steers which parents are picked (the MAP-Elites cells,
the softmax, migration and inspirations all put verified members first), but its numbers stay out
of the text the proposer sees.
"""

from __future__ import annotations

import functools
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .islands import MIGRATION_EVENT, Placement, memberships
from .records import CandidateRecord, EvaluationRecord, EventRecord, normalize_source

STATE_TENSORS = "state_tensors"  # EvaluationRecord.descriptors key: state tensors `init` returns
Cell = tuple[int, int]  # (memory bin, code-size bin)


@dataclass(frozen=True)
class SelectionParams:
    n_islands: int = 4
    migration_interval: int = 5  # generations between ring migrations
    # The chance a parent is drawn by softmax over scores; otherwise uniform over the grid's elites.
    exploitation: float = 0.7
    # Scores are loss ratios against tuned AdamW near 1.0 that differ by ~0.05-0.5 between
    # candidates: at 0.1, a candidate 0.1 better is e times as likely to be picked. 0 picks the best.
    temperature: float = 0.1
    inspirations: int = 3
    memory_bins: int = 5  # 0, 1, 2, 3, 4+ state tensors per parameter
    code_size_bins: int = 6
    # Normalized source length where bins start doubling: the bundled baselines span 47 (constant
    # schedule) to 718 (AdamW) characters, so 128 spreads them over bins 0-2 and leaves room to grow.
    code_size_min: int = 128

    def __post_init__(self) -> None:
        if self.n_islands < 1 or self.migration_interval < 1:
            raise ValueError("n_islands and migration_interval must be >= 1")
        if not 0.0 <= self.exploitation <= 1.0 or self.temperature < 0:
            raise ValueError("exploitation must be in [0, 1] and temperature >= 0")


@dataclass(frozen=True)
class Member:
    """A candidate's membership of one island (a migrant is a member of several)."""

    candidate_id: str
    island: int
    score: float | None  # ranking score (may be tier 2): never show it in a prompt
    prompt_score: float | None  # tier-1 score: the only one a prompt may show
    memory: float  # state tensors per parameter (descriptor)
    code_size: int  # normalized source length (descriptor)
    since: int  # generation from which it lives on this island
    verified: bool = False  # passed tier 2: `score` is its held-out score (ranked first)


@dataclass(frozen=True)
class Island:
    index: int
    members: tuple[Member, ...]
    elites: dict[Cell, Member]  # MAP-Elites grid: the best-scoring member per cell


@dataclass(frozen=True)
class Population:
    islands: tuple[Island, ...]


# -- scores and descriptors -------------------------------------------------------------------


def rank_score(evaluations: Iterable[EvaluationRecord]) -> float | None:
    """The archive's ranking score of one candidate (see the module docstring)."""
    by_tier = {e.tier: e for e in evaluations}
    decisive = by_tier.get(2) or by_tier.get(1)
    return decisive.score if decisive is not None and decisive.passed else None


def verified(evaluations: Iterable[EvaluationRecord]) -> bool:
    """Whether a candidate passed tier 2 with a score: its ranking score is then held out."""
    return any(e.tier == 2 and e.passed and e.score is not None for e in evaluations)


def rank_key(verified: bool, score: float | None) -> tuple[int, float]:
    """Sort key, best first: verified (tier-2) scores above tier-1-only ones, unscored last."""
    if score is None:
        return (2, 0.0)
    return (0 if verified else 1, -score)


def prompt_score(evaluations: Iterable[EvaluationRecord]) -> float | None:
    """Tier-1 score only: safe to show in a prompt."""
    tier1 = next((e for e in evaluations if e.tier == 1), None)
    return tier1.score if tier1 is not None and tier1.passed else None


def cell(member: Member, params: SelectionParams) -> Cell:
    memory_bin = min(max(math.floor(member.memory + 0.5), 0), params.memory_bins - 1)
    doublings = math.log2(max(member.code_size, 1) / params.code_size_min)
    size_bin = min(max(math.floor(doublings), 0), params.code_size_bins - 1)
    return (memory_bin, size_bin)


@functools.lru_cache(maxsize=8192)  # sources are re-read every generation; parsing is the cost
def code_size(source: str) -> int:
    return len(normalize_source(source))


# -- building the population ------------------------------------------------------------------


def build_members(
    candidates: Sequence[CandidateRecord],
    evaluations: Iterable[EvaluationRecord],
    events: Sequence[EventRecord],
) -> list[Member]:
    """One Member per (candidate, island) membership, from the store's records alone."""
    evals: dict[str, list[EvaluationRecord]] = defaultdict(list)
    for e in evaluations:
        evals[e.candidate_id].append(e)
    by_id = {c.id: c for c in candidates}
    members = []
    for (cid, island), since in memberships(candidates, events).items():
        if cid not in by_id:
            raise ValueError(f"an event places unknown candidate {cid[:12]} on island {island}")
        own = evals.get(cid, [])
        memory = next(
            (float(e.descriptors[STATE_TENSORS]) for e in own if STATE_TENSORS in e.descriptors),
            0.0,
        )
        members.append(
            Member(
                cid,
                island,
                rank_score(own),
                prompt_score(own),
                memory,
                code_size(by_id[cid].source),
                since,
                verified(own),
            )
        )
    return members


def elites(members: Iterable[Member], params: SelectionParams) -> dict[Cell, Member]:
    """MAP-Elites: the best member per cell, verified first (`rank_key`); on a tie the incumbent
    (earlier) stays."""
    grid: dict[Cell, Member] = {}
    for m in members:
        if m.score is None:
            continue
        key = cell(m, params)
        best = grid.get(key)
        if best is None or _key(m) < _key(best):
            grid[key] = m
    return grid


def build_population(members: Sequence[Member], params: SelectionParams) -> Population:
    stray = [m for m in members if not 0 <= m.island < params.n_islands]
    if stray:
        raise ValueError(
            f"candidate {stray[0].candidate_id[:12]} is on island {stray[0].island}, but the campaign "
            f"has {params.n_islands} islands: the island count cannot shrink on resume"
        )
    islands = []
    for i in range(params.n_islands):
        own = tuple(m for m in members if m.island == i)
        islands.append(Island(i, own, elites(own, params)))
    return Population(tuple(islands))


def ranked(members: Iterable[Member]) -> list[Member]:
    """Scored members best first (verified first), one per candidate (a migrant counts once); ties
    keep order."""
    return sorted(_first_per_candidate(m for m in members if m.score is not None), key=_key)


def prompt_history(members: Iterable[Member], limit: int) -> list[Member]:
    """The OPRO-style history for a prompt: best tier-1 (prompt-visible) scores first."""
    shown = _first_per_candidate(m for m in members if m.prompt_score is not None)
    return sorted(shown, key=lambda m: -(m.prompt_score or 0.0))[:limit]


def _first_per_candidate(members: Iterable[Member]) -> list[Member]:
    first: dict[str, Member] = {}
    for m in members:
        first.setdefault(m.candidate_id, m)
    return list(first.values())


def _score(member: Member) -> float:
    """The ranking score, with unscored members below everything."""
    return member.score if member.score is not None else -math.inf


def _key(member: Member) -> tuple[int, float]:
    return rank_key(member.verified, member.score)


# -- sampling ---------------------------------------------------------------------------------


def sample_parents(
    island: Island, rng: random.Random, params: SelectionParams, k: int = 1
) -> tuple[Member, ...]:
    """Up to `k` distinct parents from `island`, each drawn by exploitation (softmax over scores,
    probability `params.exploitation`) or exploration (uniform over the grid's elites).

    Verified first: exploitation's softmax runs over the island's members verified on tier 2 (their
    held-out scores) while any is left to choose, else over the tier-1-only ones; the two kinds of
    score are not on one scale (see the module docstring). Exploration keeps every cell's elite,
    verified or not, in play. Before anything on the island is scored (seeds still being
    evaluated), any member will do."""
    if not island.members:
        raise ValueError(f"island {island.index} has no members: seed every island first")
    scored = [m for m in island.members if m.score is not None]
    if not scored:
        return tuple(rng.sample(island.members, min(k, len(island.members))))
    chosen: list[Member] = []
    for _ in range(k):
        taken = {m.candidate_id for m in chosen}
        exploit = rng.random() < params.exploitation
        fresh_elites = [m for m in island.elites.values() if m.candidate_id not in taken]
        if not exploit and fresh_elites:
            chosen.append(rng.choice(fresh_elites))
            continue
        # Exploitation, or exploration with every elite already taken (e.g. a second parent when
        # the island fills one cell): softmax over the scored members not yet chosen, verified
        # ones while any is left.
        fresh = [m for m in scored if m.candidate_id not in taken]
        if not fresh:
            break
        fresh_verified = [m for m in fresh if m.verified]
        chosen.append(softmax_choice(fresh_verified or fresh, params.temperature, rng))
    return tuple(chosen)


def softmax_choice(members: Sequence[Member], temperature: float, rng: random.Random) -> Member:
    """A scored member drawn with probability proportional to exp(score / temperature);
    temperature 0 is the limit: the best (the first of equals)."""
    scores = [_score(m) for m in members]
    top = max(scores)
    if temperature == 0:
        return members[scores.index(top)]
    weights = [math.exp((s - top) / temperature) for s in scores]
    return rng.choices(members, weights=weights)[0]


def sample_inspirations(
    population: Population,
    island: int,
    parents: Sequence[Member],
    rng: random.Random,
    params: SelectionParams,
) -> tuple[Member, ...]:
    """Elites for a prompt's "inspirations": from the island's other cells and the other islands'
    best, never a parent, each candidate once."""
    home = population.islands[island]
    parent_ids = {p.candidate_id for p in parents}
    parent_cells = {cell(p, params) for p in parents}
    pool = [m for c, m in home.elites.items() if c not in parent_cells]
    for other in population.islands:
        best = ranked(other.elites.values())
        if other.index != island and best:
            pool.append(best[0])
    unique = list({m.candidate_id: m for m in pool if m.candidate_id not in parent_ids}.values())
    return tuple(rng.sample(unique, min(params.inspirations, len(unique))))


# -- migration and promotion ------------------------------------------------------------------


def migration_due(generation: int, params: SelectionParams) -> bool:
    """Whether a migration round belongs at the start of `generation` (also check
    `islands.migration_done` so a resumed campaign does not repeat a stored round)."""
    return params.n_islands > 1 and generation > 0 and generation % params.migration_interval == 0


def plan_migration(population: Population, generation: int) -> tuple[Placement, ...]:
    """Ring migration: each island's best member goes to island (i + 1) % n, unless it already lives
    there. Planned from the population before any move, so a round's moves do not chain."""
    n = len(population.islands)
    moves = []
    for island in population.islands:
        best = ranked(island.members)
        target = population.islands[(island.index + 1) % n]
        if n > 1 and best and best[0].candidate_id not in {m.candidate_id for m in target.members}:
            moves.append(
                Placement(
                    best[0].candidate_id, target.index, generation, MIGRATION_EVENT, island.index
                )
            )
    return tuple(moves)
