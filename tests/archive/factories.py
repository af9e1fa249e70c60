"""Small record builders for the archive tests: distinct sources give distinct content-hash ids."""

from __future__ import annotations

from optforge.archive import CandidateRecord, EvaluationRecord, LLMCallRecord


def candidate(
    i: int, *, island: int = 0, generation: int = 0, parents: tuple[str, ...] = (), size: int = 0
) -> CandidateRecord:
    """Candidate number `i`; `size` pads the source so code-size bins can be steered."""
    padding = f"\nPAD = {'1' * size!r}" if size else ""
    source = f"def update(grad, param, state, step, hp):\n    return -{i} * grad, state{padding}\n"
    return CandidateRecord.new(
        source,
        "optimizer",
        f"c{i}",
        parent_ids=parents,
        island=island,
        generation=generation,
        proposer="test",
        created_at=1000.0 + i,
    )


def evaluation(
    cid: str, tier: int = 1, score: float | None = 1.0, status: str = "ok", **fields: object
) -> EvaluationRecord:
    return EvaluationRecord(cid, tier, status, score=score, created_at=2000.0, **fields)


def llm_call(
    cid: str | None = None, cost: float | None = 0.01, error: str | None = None
) -> LLMCallRecord:
    return LLMCallRecord(cid, "test-model", 100, 50, cost, 0.5, error, created_at=3000.0)
