"""Island membership, explicit and derived only from what the archive stores.

OpenEvolve's islands silently collapsed into island 0 for months (DESIGN.md); here membership is
never implicit state in a running process. A candidate is a member of:
  - the island it was born on (`CandidateRecord.island`), from its own generation on, and
  - every island a placement event put it on, from that event's generation on. Placements are
    "seed" events (copies of seeds onto islands that would otherwise start empty) and "migration"
    events (ring migration of elites; the migrant keeps its id and stays on its source island too).
One event holds a whole seeding or migration round, so a round is stored atomically and its
presence tells a resumed campaign that the round is done.

Invariants (checked by `island_violations`, asserted by tests and cheap enough for a campaign to
check on resume): every island is populated; every island index is in range; a child is born on an
island where its first parent was a member by the child's generation; a migrant leaves an island
it was a member of.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .records import CandidateRecord, EventRecord

SEED_EVENT = "seed"
MIGRATION_EVENT = "migration"


@dataclass(frozen=True)
class Placement:
    """A candidate put on an island it was not born on."""

    candidate_id: str
    island: int
    generation: int  # a member of `island` from this generation on
    reason: str  # SEED_EVENT or MIGRATION_EVENT
    from_island: int | None = None  # migrations only


@dataclass(frozen=True)
class SeedPlan:
    """Where the seeds live: store each seed with `island=births[id]`, then `event()` if any."""

    births: dict[str, int]
    copies: tuple[Placement, ...]

    def event(self) -> EventRecord | None:
        if not self.copies:
            return None
        data = [{"candidate_id": p.candidate_id, "island": p.island} for p in self.copies]
        return EventRecord(SEED_EVENT, {"placements": data})


def seed_islands(seed_ids: Sequence[str], n_islands: int) -> SeedPlan:
    """Deal seeds round-robin over the islands; with fewer seeds than islands, the remaining islands
    get copies (seed j % len(seeds) on island j), so every island starts populated."""
    if n_islands < 1:
        raise ValueError(f"n_islands must be >= 1, got {n_islands}")
    unique = list(dict.fromkeys(seed_ids))  # a repeated seed must not be born twice
    if not unique:
        raise ValueError("at least one seed is needed to populate the islands")
    births = {cid: i % n_islands for i, cid in enumerate(unique)}
    copies = tuple(
        Placement(unique[j % len(unique)], j, 0, SEED_EVENT) for j in range(len(unique), n_islands)
    )
    return SeedPlan(births, copies)


def migration_event(moves: Iterable[Placement], generation: int) -> EventRecord:
    """The event recording one migration round (stored even when no elite moved: the round is done)."""
    data = [
        {"candidate_id": m.candidate_id, "from_island": m.from_island, "to_island": m.island}
        for m in moves
    ]
    return EventRecord(MIGRATION_EVENT, {"generation": generation, "moves": data})


def migration_done(events: Iterable[EventRecord], generation: int) -> bool:
    return any(e.kind == MIGRATION_EVENT and e.data["generation"] == generation for e in events)


def placements(events: Iterable[EventRecord]) -> list[Placement]:
    """Every placement recorded by seed and migration events, in the order stored."""
    out: list[Placement] = []
    for event in events:
        if event.kind == SEED_EVENT:
            out += [
                Placement(p["candidate_id"], p["island"], 0, SEED_EVENT)
                for p in event.data["placements"]
            ]
        elif event.kind == MIGRATION_EVENT:
            gen = event.data["generation"]
            out += [
                Placement(m["candidate_id"], m["to_island"], gen, MIGRATION_EVENT, m["from_island"])
                for m in event.data["moves"]
            ]
    return out


def memberships(
    candidates: Iterable[CandidateRecord], events: Iterable[EventRecord]
) -> dict[tuple[str, int], int]:
    """(candidate id, island) -> the generation from which the candidate is a member there.

    Ordered: births in the order stored, then placements in the order stored."""
    joined: dict[tuple[str, int], int] = {}
    for c in candidates:
        joined[(c.id, c.island)] = c.generation
    for p in placements(events):
        key = (p.candidate_id, p.island)
        joined[key] = min(joined.get(key, p.generation), p.generation)
    return joined


def island_violations(
    candidates: Sequence[CandidateRecord], events: Sequence[EventRecord], n_islands: int
) -> list[str]:
    """Every broken island invariant, one line each; empty when the archive is sound."""
    joined = memberships(candidates, events)
    known = {c.id for c in candidates}
    problems = [
        f"island {i} has no members" for i in range(n_islands) if i not in {k[1] for k in joined}
    ]
    problems += [
        f"{cid[:12]} is on island {i}, outside 0..{n_islands - 1}"
        for cid, i in joined
        if i >= n_islands
    ]
    for p in placements(events):
        if p.candidate_id not in known:
            problems.append(f"{p.reason} event places unknown candidate {p.candidate_id[:12]}")
        elif (
            p.from_island is not None
            and joined.get((p.candidate_id, p.from_island), p.generation + 1) > p.generation
        ):
            problems.append(
                f"{p.candidate_id[:12]} migrated from island {p.from_island}, where it did not live"
            )
    for c in candidates:
        if (
            c.parent_ids
            and joined.get((c.parent_ids[0], c.island), c.generation + 1) > c.generation
        ):
            problems.append(
                f"child {c.id[:12]} (generation {c.generation}) is on island {c.island}, where its "
                f"parent {c.parent_ids[0][:12]} did not live"
            )
    return problems
