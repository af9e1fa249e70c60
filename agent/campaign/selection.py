"""Parent selection for the loop: what a proposer is shown, and migration between islands.

The policies are pure functions of the archive (archive/selection.py, archive/islands.py); this
applies them to the running campaign's records (campaign_state.py) and writes migrations.
"""

from __future__ import annotations

import random

from optforge.agent.campaign import records as records
from optforge.agent.campaign.state import CampaignArchive
from optforge.agent.config import CampaignConfig
from optforge.agent.proposers.base import ProposalRequest
from optforge.archive import (
    Member,
    Population,
    SelectionParams,
    build_members,
    build_population,
    migration_done,
    migration_due,
    migration_event,
    plan_migration,
    prompt_history,
    sample_inspirations,
    sample_parents,
)
from optforge.tasks.kinds import kind_spec


def selection_params(config: CampaignConfig) -> SelectionParams:
    search = config.search
    return SelectionParams(
        n_islands=search.islands,
        migration_interval=search.migration_interval,
        exploitation=search.exploitation,
        temperature=search.temperature if search.temperature is not None else kind_spec(config.kind).selection_temperature,
        inspirations=search.inspirations,
    )


class ParentSelection:
    def __init__(self, archive: CampaignArchive, config: CampaignConfig):
        self.archive, self.config = archive, config
        self.params = selection_params(config)

    def request(self, island: int, rng: random.Random) -> ProposalRequest:
        """What to ask the proposer for a child on `island`: parents sampled there (two with the
        crossover rate), inspirations from other islands and cells, and the history (OPRO)."""
        members, population = self._population()
        k = 2 if rng.random() < self.config.search.crossover_rate else 1
        parents = sample_parents(population.islands[island], rng, self.params, k)
        inspirations = sample_inspirations(population, island, parents, rng, self.params)
        tier1 = {e.candidate_id: e for e in self.archive.of_tiers(1)}

        def info(candidate_id: str) -> records.ParentInfo:
            return records.parent_info(self.archive.candidate(candidate_id), tier1.get(candidate_id))

        history = prompt_history(members, self.config.llm.history_size)
        return ProposalRequest(
            self.config.kind,
            tuple(info(m.candidate_id) for m in parents),
            tuple(info(m.candidate_id) for m in inspirations),
            tuple(info(m.candidate_id) for m in history),
        )

    def migrate(self, generation: int) -> int | None:
        """Move elites around the ring when `generation` calls for it (once per generation, also
        across resumes); how many moved, or None when no migration was due."""
        if not migration_due(generation, self.params) or migration_done(self.archive.events, generation):
            return None
        _, population = self._population()
        moves = plan_migration(population, generation)
        self.archive.add_event(migration_event(moves, generation))
        return len(moves)

    def _population(self) -> tuple[list[Member], Population]:
        members = build_members(self.archive.candidates, self.archive.evaluations, self.archive.events)
        return members, build_population(members, self.params)
