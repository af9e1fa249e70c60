"""Selection: island invariants, MAP-Elites, sampling, migration, ranking and promotion."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optforge.archive import (
    STATE_TENSORS,
    ArchiveStore,
    CandidateRecord,
    EvaluationRecord,
    EventRecord,
    Island,
    Member,
    Population,
    SelectionParams,
    build_members,
    build_population,
    cell,
    elites,
    island_violations,
    migration_done,
    migration_due,
    migration_event,
    placements,
    plan_migration,
    prompt_history,
    prompt_score,
    rank_key,
    rank_score,
    ranked,
    sample_inspirations,
    sample_parents,
    seed_islands,
    softmax_choice,
    verified,
)
from tests.archive.factories import candidate, evaluation

PARAMS = SelectionParams()


def member(
    i: int, score: float | None, island: int = 0, memory: float = 0, size: int = 200
) -> Member:
    return Member(f"id{i}", island, score, score, memory, size, 0)


class Campaign:
    """An in-memory campaign that uses selection exactly as the agent loop would."""

    def __init__(self, n_seeds: int, params: SelectionParams, rng: random.Random) -> None:
        self.params, self.rng = params, rng
        self.candidates: list[CandidateRecord] = []
        self.evaluations: list[EvaluationRecord] = []
        self.events: list[EventRecord] = []
        plan = seed_islands([candidate(i).id for i in range(n_seeds)], params.n_islands)
        for i in range(n_seeds):
            self._add(candidate(i, island=plan.births[candidate(i).id]))
        if plan.event():
            self.events.append(plan.event())

    def _add(self, c: CandidateRecord) -> None:
        self.candidates.append(c)
        if self.rng.random() < 0.2:  # a failed candidate: a member, never an elite
            self.evaluations.append(evaluation(c.id, score=None, status="diverged"))
        else:
            tensors = {STATE_TENSORS: self.rng.randint(0, 3)}
            self.evaluations.append(
                evaluation(c.id, score=self.rng.uniform(0.2, 2.0), descriptors=tensors)
            )

    def population(self) -> Population:
        return build_population(
            build_members(self.candidates, self.evaluations, self.events), self.params
        )

    def generation(self, gen: int) -> None:
        if migration_due(gen, self.params) and not migration_done(self.events, gen):
            self.events.append(migration_event(plan_migration(self.population(), gen), gen))
        for island in range(self.params.n_islands):
            parents = sample_parents(
                self.population().islands[island], self.rng, self.params, k=self.rng.choice([1, 2])
            )
            assert all(p.island == island for p in parents)
            child = candidate(
                len(self.candidates),
                island=island,
                generation=gen,
                parents=tuple(p.candidate_id for p in parents),
                size=self.rng.randint(0, 3000),
            )
            self._add(child)


# -- island invariants -------------------------------------------------------------------------


@given(n_seeds=st.integers(1, 12), n_islands=st.integers(1, 8))
def test_every_island_is_populated_after_seeding(n_seeds: int, n_islands: int) -> None:
    campaign = Campaign(n_seeds, SelectionParams(n_islands=n_islands), random.Random(0))
    assert island_violations(campaign.candidates, campaign.events, n_islands) == []
    assert all(island.members for island in campaign.population().islands)
    assert len({c.id for c in campaign.candidates}) == n_seeds  # each seed born exactly once


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    n_seeds=st.integers(1, 6),
    n_islands=st.integers(1, 5),
    interval=st.integers(1, 4),
)
def test_children_live_on_their_parents_island_and_every_island_evolves(
    seed: int, n_seeds: int, n_islands: int, interval: int
) -> None:
    params = SelectionParams(n_islands=n_islands, migration_interval=interval)
    campaign = Campaign(n_seeds, params, random.Random(seed))
    for gen in range(1, 7):
        campaign.generation(gen)
    assert island_violations(campaign.candidates, campaign.events, n_islands) == []
    for c in campaign.candidates:
        if c.parent_ids:
            homes = {
                m.island
                for m in build_members(campaign.candidates, [], campaign.events)
                if m.candidate_id == c.parent_ids[0] and m.since <= c.generation
            }
            assert c.island in homes
    born = {(c.island, c.generation) for c in campaign.candidates}
    assert all(
        (i, 6) in born for i in range(n_islands)
    )  # no island stalls or collapses into another


def test_island_violations_catch_what_they_guard() -> None:
    parent = candidate(0, island=0)
    stray = candidate(1, island=1, generation=1, parents=(parent.id,))
    outside = candidate(2, island=7)
    problems = island_violations([parent, stray, outside], [], 3)
    assert any("island 2 has no members" in p for p in problems)
    assert any("where its parent" in p for p in problems)
    assert any("outside 0..2" in p for p in problems)
    bogus = migration_event([], 1)
    bogus.data["moves"].append({"candidate_id": parent.id, "from_island": 2, "to_island": 1})
    assert any("did not live" in p for p in island_violations([parent], [bogus], 3))


def test_membership_is_derived_from_a_real_store(tmp_path: Path) -> None:
    params = SelectionParams(n_islands=3)
    with ArchiveStore.create(tmp_path / "a.sqlite", {}) as store:
        seed = candidate(0)
        plan = seed_islands([seed.id], 3)
        store.add_candidate(candidate(0, island=plan.births[seed.id]))
        store.add_event(plan.event())
        store.add_evaluation(evaluation(seed.id, score=1.0))
        population = build_population(
            build_members(store.candidates(), store.evaluations(), store.events()), params
        )
        assert [len(i.members) for i in population.islands] == [1, 1, 1]
        child = candidate(1, island=2, generation=1, parents=(seed.id,))
        store.add_candidate(child)
        store.add_evaluation(evaluation(child.id, score=1.5))
        population = build_population(
            build_members(store.candidates(), store.evaluations(), store.events()), params
        )
        store.add_event(migration_event(plan_migration(population, 2), 2))
        members = build_members(store.candidates(), store.evaluations(), store.events())
        assert island_violations(store.candidates(), store.events(), 3) == []
        assert {m.island for m in members if m.candidate_id == child.id} == {0, 2}  # migrated, kept
        assert migration_done(store.events(), 2) and not migration_done(store.events(), 3)


def test_build_population_refuses_members_beyond_the_island_count() -> None:
    with pytest.raises(ValueError, match="island count cannot shrink"):
        build_population([member(0, 1.0, island=4)], SelectionParams(n_islands=4))


# -- MAP-Elites --------------------------------------------------------------------------------

members_strategy = st.lists(
    st.tuples(st.one_of(st.none(), st.floats(0, 5)), st.integers(0, 6), st.integers(1, 10000)),
    max_size=40,
)


@given(rows=members_strategy)
def test_map_elites_keeps_the_best_member_of_every_cell(rows: list) -> None:
    members = [member(i, s, memory=m, size=z) for i, (s, m, z) in enumerate(rows)]
    grid = elites(members, PARAMS)
    scored = [m for m in members if m.score is not None]
    assert set(grid) == {cell(m, PARAMS) for m in scored}
    for key, best in grid.items():
        rivals = [m for m in scored if cell(m, PARAMS) == key]
        assert best.score == max(m.score for m in rivals)
        assert best is next(m for m in rivals if m.score == best.score)  # ties: the incumbent stays


def test_cells_bin_state_tensors_and_log_code_size() -> None:
    assert cell(member(0, 1.0, memory=0, size=50), PARAMS) == (0, 0)
    assert cell(member(0, 1.0, memory=2, size=300), PARAMS) == (2, 1)  # 256 <= 300 < 512
    assert cell(member(0, 1.0, memory=2.4, size=600), PARAMS) == (2, 2)
    assert cell(member(0, 1.0, memory=9, size=10**6), PARAMS) == (4, 5)  # clamped to the last bins


# -- sampling ----------------------------------------------------------------------------------


@given(scores=st.lists(st.floats(-5, 5), min_size=1, max_size=20, unique=True))
def test_softmax_at_temperature_zero_picks_the_best(scores: list[float]) -> None:
    members = [member(i, s) for i, s in enumerate(scores)]
    assert softmax_choice(members, 0.0, random.Random(1)).score == max(scores)


@given(
    scores=st.lists(st.integers(-50, 50), min_size=2, max_size=20, unique=True), seed=st.integers()
)
def test_softmax_as_temperature_goes_to_zero_picks_the_best(scores: list[int], seed: int) -> None:
    members = [member(i, s / 10) for i, s in enumerate(scores)]  # scores 0.1 or more apart
    assert softmax_choice(members, 1e-4, random.Random(seed)).score == max(scores) / 10


def test_softmax_prefers_higher_scores_at_moderate_temperature() -> None:
    members = [member(0, 1.0), member(1, 1.1)]
    rng = random.Random(3)
    picks = [softmax_choice(members, 0.1, rng).candidate_id for _ in range(4000)]
    assert picks.count("id1") / 4000 == pytest.approx(math.e / (1 + math.e), abs=0.03)


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.7, 1.0])
def test_exploration_ratio_is_respected(ratio: float) -> None:
    # One clear best and k - 1 others, each alone in its cell: exploitation at temperature 0 always
    # picks the best, exploration picks uniformly, so P(best) = ratio + (1 - ratio) / k.
    k = 5
    members = tuple(member(i, 10.0 if i == 0 else 1.0, memory=i) for i in range(k))
    params = SelectionParams(exploitation=ratio, temperature=0.0)
    island = Island(0, members, elites(members, params))
    rng, n = random.Random(42), 4000
    hits = sum(sample_parents(island, rng, params)[0].candidate_id == "id0" for _ in range(n))
    expected = ratio + (1 - ratio) / k
    assert abs(hits / n - expected) < 4 * math.sqrt(expected * (1 - expected) / n) + 1e-9


def test_parents_are_distinct_and_unscored_islands_still_yield_a_parent() -> None:
    members = tuple(member(i, float(i)) for i in range(4))
    island = Island(0, members, elites(members, PARAMS))
    for seed in range(50):
        parents = sample_parents(island, random.Random(seed), PARAMS, k=2)
        assert len({p.candidate_id for p in parents}) == len(parents) == 2
    pending = Island(1, (member(9, None, island=1),), {})
    assert sample_parents(pending, random.Random(0), PARAMS)[0].candidate_id == "id9"
    with pytest.raises(ValueError, match="seed every island"):
        sample_parents(Island(2, (), {}), random.Random(0), PARAMS)


def test_inspirations_come_from_other_cells_and_islands_never_the_parents() -> None:
    home = tuple(member(i, float(i), memory=i) for i in range(4))
    away = tuple(member(10 + i, float(i), island=1, memory=i) for i in range(3))
    population = Population(
        (Island(0, home, elites(home, PARAMS)), Island(1, away, elites(away, PARAMS)))
    )
    params = SelectionParams(inspirations=10, n_islands=2)
    picks = sample_inspirations(population, 0, [home[3]], random.Random(0), params)
    assert {p.candidate_id for p in picks} == {
        "id0",
        "id1",
        "id2",
        "id12",
    }  # other cells + best away


def test_selection_is_deterministic_with_a_seeded_random() -> None:
    def run(seed: int) -> list[str]:
        campaign = Campaign(
            3, SelectionParams(n_islands=3, migration_interval=2), random.Random(seed)
        )
        for gen in range(1, 5):
            campaign.generation(gen)
        return [c.id for c in campaign.candidates] + [str(e.data) for e in campaign.events]

    assert run(7) == run(7)
    assert run(7) != run(8)


# -- migration ---------------------------------------------------------------------------------


@given(
    rows=st.lists(st.tuples(st.integers(0, 3), st.one_of(st.none(), st.floats(0, 5))), max_size=30)
)
def test_migration_sends_each_islands_best_to_the_next_island(rows: list) -> None:
    params = SelectionParams(n_islands=4)
    members = [member(i, s, island=isl) for i, (isl, s) in enumerate(rows)]
    population = build_population(members, params)
    moves = plan_migration(population, 5)
    after = {(m.candidate_id, m.island) for m in members} | {
        (p.candidate_id, p.island) for p in moves
    }
    for island in population.islands:
        best = ranked(island.members)
        if best:
            assert (best[0].candidate_id, (island.index + 1) % 4) in after
            assert (best[0].candidate_id, island.index) in after  # the migrant stays home too
    assert placements([migration_event(moves, 5)]) == list(moves)


def test_migration_is_due_every_interval_and_never_with_one_island() -> None:
    params = SelectionParams(migration_interval=3)
    assert [g for g in range(10) if migration_due(g, params)] == [3, 6, 9]
    assert not any(migration_due(g, SelectionParams(n_islands=1)) for g in range(10))


# -- ranking and promotion ---------------------------------------------------------------------


def test_ranking_prefers_tier2_but_prompts_only_ever_see_tier1() -> None:
    tier1, tier2 = evaluation("c", tier=1, score=1.4), evaluation("c", tier=2, score=0.9)
    failed2 = evaluation("c", tier=2, score=None, status="diverged")
    assert (rank_score([tier1]), prompt_score([tier1])) == (1.4, 1.4)
    assert (rank_score([tier1, tier2]), prompt_score([tier1, tier2])) == (0.9, 1.4)
    assert (rank_score([tier1, failed2]), prompt_score([tier1, failed2])) == (None, 1.4)
    assert rank_score([evaluation("c", tier=0, score=None)]) is None


def _verified(i: int, score: float, island: int = 0, memory: float = 0) -> Member:
    return Member(f"v{i}", island, score, 2.0, memory, 200, 0, verified=True)


def test_verified_members_rank_above_tier1_only_ones_whatever_their_scores() -> None:
    tier1, tier2 = evaluation("c", tier=1, score=1.4), evaluation("c", tier=2, score=0.9)
    failed2 = evaluation("c", tier=2, score=None, status="diverged")
    assert verified([tier1, tier2]) and not verified([tier1]) and not verified([tier1, failed2])
    assert rank_key(True, 0.9) < rank_key(False, 1.4) < rank_key(False, 1.0) < rank_key(True, None)
    screen_star, held_out = member(1, 1.6), _verified(2, 0.97)
    assert [m.candidate_id for m in ranked([screen_star, held_out])] == ["v2", "id1"]
    # MAP-Elites: in a shared cell the verified member is the elite.
    assert elites([screen_star, held_out], PARAMS)[cell(held_out, PARAMS)] is held_out
    # Migration sends an island's verified best, not its unverified tier-1 leader.
    population = build_population([screen_star, held_out], SelectionParams(n_islands=2))
    (move,) = plan_migration(population, generation=5)
    assert move.candidate_id == "v2"


def test_build_members_marks_candidates_that_passed_tier_2() -> None:
    a, b = candidate(1), candidate(2)
    evals = [
        evaluation(a.id, tier=1, score=1.5),
        evaluation(b.id, tier=1, score=1.1),
        evaluation(b.id, tier=2, score=0.98),
    ]
    by_id = {m.candidate_id: m for m in build_members([a, b], evals, [])}
    assert (by_id[a.id].verified, by_id[a.id].score) == (False, 1.5)
    assert (by_id[b.id].verified, by_id[b.id].score, by_id[b.id].prompt_score) == (True, 0.98, 1.1)


def test_exploitation_draws_verified_members_first() -> None:
    island = Island(
        0,
        (member(1, 1.9), member(2, 1.8), _verified(3, 0.95), _verified(4, 0.9, memory=1)),
        {},
    )
    greedy = SelectionParams(exploitation=1.0, temperature=0.1)
    rng = random.Random(7)
    picks = [sample_parents(island, rng, greedy)[0].candidate_id for _ in range(200)]
    assert set(picks) == {"v3", "v4"}  # never the higher-scoring tier-1-only members
    assert picks.count("v3") > picks.count("v4")  # softmax over the held-out scores
    # A second parent once every verified member is taken: the tier-1-only ones, by softmax.
    two = sample_parents(Island(0, (member(1, 1.9), _verified(3, 0.95)), {}), rng, greedy, k=2)
    assert [m.candidate_id for m in two] == ["v3", "id1"]


def test_prompt_history_sorts_by_tier1_and_lists_each_candidate_once() -> None:
    a = Member("a", 0, 0.5, 2.0, 0, 100, 0)  # held-out score low, screen score high
    b = Member("b", 0, 3.0, 1.0, 0, 100, 0)
    migrant = Member("a", 1, 0.5, 2.0, 0, 100, 3)
    assert [m.candidate_id for m in prompt_history([b, a, migrant], 5)] == ["a", "b"]
    assert [m.candidate_id for m in ranked([a, b, migrant])] == ["b", "a"]


def test_selection_params_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        SelectionParams(n_islands=0)
    with pytest.raises(ValueError):
        SelectionParams(exploitation=1.5)


def test_a_placement_of_an_unknown_candidate_is_an_error_not_a_silent_skip() -> None:
    event = migration_event([], 1)
    event.data["moves"].append({"candidate_id": "f" * 64, "from_island": 0, "to_island": 1})
    with pytest.raises(ValueError, match="unknown candidate"):
        build_members([candidate(0)], [], [event])
