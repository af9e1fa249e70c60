"""optforge.archive: the system of record of a discovery campaign.

- `records`: the frozen records stored (candidates, evaluations, LLM calls, events) and the
  content-hash ids of candidates (sha256 of the normalized source).
- `store`: `ArchiveStore`, one append-only SQLite file per campaign that survives SIGKILL and
  refuses newer or corrupt files with a clear error.
- `islands`: explicit island membership (births, seed copies, migrations) and its invariants.
- `selection`: pure parent selection: MAP-Elites grid per island, softmax/uniform sampling,
  inspirations, ring migration, the ranking score and the prompt-visible (tier-1) score, promotion.

This package imports nothing from optforge.agent, optforge.tasks or optforge.sandbox: the agent
converts its own objects into these records.
"""

from .errors import (
    AmbiguousIdError,
    ArchiveError,
    ArchiveExistsError,
    CorruptArchiveError,
    DuplicateEvaluationError,
    NewerSchemaError,
    NotAnArchiveError,
    UnknownCandidateError,
)
from .islands import (
    MIGRATION_EVENT,
    SEED_EVENT,
    Placement,
    SeedPlan,
    island_violations,
    memberships,
    migration_done,
    migration_event,
    placements,
    seed_islands,
)
from .records import (
    TIERS,
    CandidateRecord,
    EvaluationRecord,
    EventRecord,
    LLMCallRecord,
    TaskResult,
    candidate_id,
    config_hash,
    normalize_source,
)
from .schema import SCHEMA_VERSION
from .selection import (
    STATE_TENSORS,
    Cell,
    Island,
    Member,
    Population,
    SelectionParams,
    build_members,
    build_population,
    cell,
    code_size,
    elites,
    migration_due,
    plan_migration,
    prompt_history,
    prompt_score,
    rank_key,
    rank_score,
    ranked,
    sample_inspirations,
    sample_parents,
    softmax_choice,
    verified,
)
from .store import ArchiveCounts, ArchiveStore

__all__ = [
    "MIGRATION_EVENT",
    "SCHEMA_VERSION",
    "SEED_EVENT",
    "STATE_TENSORS",
    "TIERS",
    "AmbiguousIdError",
    "ArchiveCounts",
    "ArchiveError",
    "ArchiveExistsError",
    "ArchiveStore",
    "CandidateRecord",
    "Cell",
    "CorruptArchiveError",
    "DuplicateEvaluationError",
    "EvaluationRecord",
    "TaskResult",
    "EventRecord",
    "Island",
    "LLMCallRecord",
    "Member",
    "NewerSchemaError",
    "NotAnArchiveError",
    "Placement",
    "Population",
    "SeedPlan",
    "SelectionParams",
    "UnknownCandidateError",
    "build_members",
    "build_population",
    "candidate_id",
    "cell",
    "code_size",
    "config_hash",
    "elites",
    "island_violations",
    "memberships",
    "migration_done",
    "migration_due",
    "migration_event",
    "normalize_source",
    "placements",
    "plan_migration",
    "prompt_history",
    "prompt_score",
    "rank_key",
    "rank_score",
    "ranked",
    "sample_inspirations",
    "sample_parents",
    "seed_islands",
    "softmax_choice",
    "verified",
]
