"""The text of an exported candidate: a standalone Python module that needs only torch.

Layout of the module (`render_export`):

    a docstring with the provenance and usage, for people;
    PROVENANCE = {...}        the same facts as a literal dict, for programs (ids, scores, lrs);
    CANDIDATE_SOURCE = r'''...'''   the candidate's code, verbatim, exactly as it was scored;
    the adapter code, copied verbatim from optforge (see export_source.emit_definitions);
    CANDIDATE = load_candidate(CANDIDATE_SOURCE, ...) and the public object of its kind:
    DiscoveredOptimizer (a torch.optim.Optimizer), DiscoveredLoss / discovered_loss (an
    nn.Module), or discovered_schedule(optimizer, total_steps) (a LambdaLR).

The candidate's code is kept as a string and run the way scoring ran it (`load_candidate`: a fresh
namespace), not pasted as module code, so its names cannot collide with the adapter's and it sees
exactly what it saw when it was scored. `read_export` checks a file without running it.
"""

from __future__ import annotations

import ast
import hashlib
import pprint
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .export_source import Emitted
from .records import CandidateRecord, EvaluationRecord, candidate_id

ADAMW_SCORING = (
    "Scores against tuned AdamW (AdamW's final held-out metric / this candidate's; >1 is better,",
    "every candidate and AdamW get the same learning-rate sweep, seeds paired):",
)


@dataclass(frozen=True)
class PublicObject:
    """The kind's own part of an exported file, which the agent takes from the kind's spec (the
    archive does not import tasks): `code`, the module's tail after the line that binds CANDIDATE,
    and `usage`, lines for the docstring."""

    code: str
    usage: tuple[str, ...]
    scoring: tuple[str, ...] = ADAMW_SCORING  # what the scores are: the kind's reference, its tuning


@dataclass(frozen=True)
class BaselineComparison:
    """The exported candidate against its campaign's best tuned baseline on tier 2, for the header.

    Computed by the agent (the archive does not import the scoring code): `name` is None when no
    baseline was evaluated on tier 2; `ratio` is the baseline's held-out finals over the candidate's
    (geometric mean over tasks, > 1: the candidate is better) paired seed by seed, with its 95% CI,
    None when the candidate has no tier-2 result or the two do not pair."""

    name: str | None
    score: float | None = None  # the baseline's own tier-2 score (x tuned AdamW)
    ratio: float | None = None
    ci: tuple[float, float] | None = None
    seeds: int = 0
    tasks: int = 0


class ExportIntegrityError(ValueError):
    """An exported file is not one `optforge export` wrote, or its candidate code was edited."""


@dataclass(frozen=True)
class ExportedCandidate:
    """What `read_export` found in a file: the checked candidate code and its provenance."""

    source: str
    provenance: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.provenance["kind"])


def source_sha256(source: str) -> str:
    """sha256 (hex) of the candidate code exactly as embedded (a one-character edit changes it)."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def render_export(
    candidate: CandidateRecord,
    evaluations: Sequence[EvaluationRecord],
    *,
    campaign: str,
    runtime: Emitted,
    exported_at: datetime,
    public: PublicObject,
    baseline: BaselineComparison | None = None,
) -> str:
    """The exported module's text; `runtime` = emit_definitions(adapter modules, the kind's export
    roots), `public` the kind's public object; `baseline`, when given, adds the comparison with the
    best tuned baseline to the header."""
    provenance = _provenance(candidate, evaluations, campaign, exported_at)
    prefix = "PROVENANCE = "
    provenance_text = pprint.pformat(provenance, width=96, sort_dicts=False)
    # No `from __future__ import annotations`: with string annotations, dataclasses look their
    # module up in sys.modules while it executes, and loaders that run a file without registering it
    # (importlib's spec_from_file_location + exec_module) then fail. Evaluated annotations need no
    # lookup, so the file loads however a user's tooling loads files.
    header = [_docstring(provenance, public.usage, baseline, public.scoring), runtime.imports]
    body = [
        "# ---- provenance and the candidate's code, exactly as scored " + "-" * 33,
        prefix + provenance_text.replace("\n", "\n" + " " * len(prefix)),
        f"CANDIDATE_SOURCE = {_string_literal(candidate.source)}",
        runtime.definitions,
        "# ---- the exported object " + "-" * 67,
        f"{_CANDIDATE_LINE}\n\n\n{public.code}",
    ]
    return "\n\n".join(header) + "\n\n\n" + "\n\n\n".join(body) + "\n"


def _provenance(
    candidate: CandidateRecord,
    evaluations: Sequence[EvaluationRecord],
    campaign: str,
    exported_at: datetime,
) -> dict[str, Any]:
    return {
        "campaign": campaign,
        "candidate_id": candidate.id,
        "source_sha256": source_sha256(candidate.source),
        "name": candidate.name,
        "kind": candidate.kind,
        "proposer": candidate.proposer,
        "generation": candidate.generation,
        "parent_ids": list(candidate.parent_ids),
        "exported_at": exported_at.isoformat(timespec="seconds"),
        "evaluations": {
            f"tier{e.tier}": _evaluation(e) for e in sorted(evaluations, key=lambda e: e.tier)
        },
    }


def _evaluation(e: EvaluationRecord) -> dict[str, Any]:
    """One tier's result as scored: the aggregate, and per task the score and tuned learning rates."""
    return {
        "status": e.status,
        "score": e.score,
        "score_ci": list(e.score_ci) if e.score_ci else None,
        "seeds": e.seeds,
        "lr_sweep": list(e.learning_rates),
        "tasks": {
            t.name: {
                "status": t.status,
                "score": t.score,
                "score_ci": list(t.score_ci) if t.score_ci else None,
                "lr": t.lr,
                "adamw_lr": t.reference_lr,
            }
            for t in e.tasks
        },
        "code_commit": e.code_commit,
        "config_hash": e.config_hash,
        "reused_from": e.reused_from,
        "evaluated_at": datetime.fromtimestamp(e.created_at, UTC).isoformat(timespec="seconds"),
    }


def _string_literal(source: str) -> str:
    """A literal that evaluates to exactly `source`: raw and readable when possible, else repr."""
    for quote in ("'''", '"""'):
        if quote not in source and "\r" not in source and not source.endswith("\\"):
            literal = f"r{quote}{source}{quote}"
            try:
                if ast.literal_eval(literal) == source:
                    return literal
            except (SyntaxError, ValueError):
                pass
    return repr(source)


def _plain(text: object) -> str:
    """Text safe inside the module's docstring: one printable line, no backslash or closing quotes
    (names come from proposers; a NUL or a stray triple quote would break the module)."""
    printable = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return " ".join(printable.split()).replace("\\", "/").replace('"""', "'''")


def _docstring(
    p: dict[str, Any], usage: Sequence[str], baseline: BaselineComparison | None = None,
    scoring: Sequence[str] = ADAMW_SCORING,
) -> str:
    lines = [
        f"{_plain(p['name'])}: {'an' if p['kind'][0] in 'aeiou' else 'a'} {p['kind']} discovered by optforge, exported with its provenance.",
        "",
        f"Campaign:       {_plain(p['campaign'])}",
        f"Candidate id:   {p['candidate_id']}",
        "                (the archive's id: sha256 of the normalized source)",
        f"Source sha256:  {p['source_sha256']}",
        "                (of CANDIDATE_SOURCE below, byte for byte; optforge.load_* checks it)",
        f"Kind, proposer: {p['kind']}, {_plain(p['proposer'])} (generation {p['generation']})",
        f"Exported:       {p['exported_at']}",
        "",
        *scoring,
    ]
    for tier, label in ((1, "tier 1 (screen)"), (2, "tier 2 (held out)")):
        lines += _tier_lines(label, p["evaluations"].get(f"tier{tier}"))
    if baseline is not None:
        lines += ["", *_baseline_lines(baseline)]
    lines += ["", "Usage:", *(f"    {line}" for line in usage)]
    return '"""' + "\n".join(lines).rstrip() + '\n"""'


def _tier_lines(label: str, e: dict[str, Any] | None) -> list[str]:
    if e is None:
        return [f"  {label}: not evaluated"]
    lines = [
        f"  {label}: {_score(e['score'], e['score_ci'])}, status {e['status']}, {e['seeds']} seeds"
    ]
    lines.append(
        f"    evaluated {e['evaluated_at']} by optforge commit {e['code_commit'] or 'unknown'}"
    )
    if e["reused_from"]:
        lines.append(
            f"    (copied from candidate {e['reused_from'][:12]}: identical tier-0 behaviour)"
        )
    if e["lr_sweep"]:
        sweep = ", ".join(f"{lr:.3g}" for lr in e["lr_sweep"])
        lines.append(f"    learning-rate sweep: {sweep}")
    for name, t in e["tasks"].items():
        lrs = f", best lr {_num(t['lr'])} (AdamW {_num(t['adamw_lr'])})" if t["lr"] or t["adamw_lr"] else ""
        lines.append(
            f"    {_plain(name)}: {_score(t['score'], t['score_ci'])}{lrs}, {t['status']}"
        )
    return lines


def _baseline_lines(b: BaselineComparison) -> list[str]:
    head = "Against the best tuned baseline on tier 2 (held out), paired seed by seed:"
    if b.name is None:
        return [
            head,
            "  no baseline was evaluated on tier 2 in this campaign (cascade.seeds_tier2 = true",
            "  evaluates the bundled baselines there)",
        ]
    who = f"{_plain(b.name)} ({_score(b.score, None)} x tuned AdamW)"
    if b.ratio is None:
        return [head, f"  {who}: no comparison (no tier-2 result here, or the two do not pair)"]
    return [
        head,
        f"  {who}: {_score(b.ratio, b.ci)}",
        f"  ({_plain(b.name)}'s final held-out metric / this candidate's, geometric mean over",
        f"  {b.tasks} task{'' if b.tasks == 1 else 's'}, {b.seeds} seeds each; >1 is better)",
    ]


def _score(score: float | None, ci: Sequence[float] | None) -> str:
    if score is None:
        return "no score"
    return f"{score:.3f}" + (f" [95% CI {ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


_CANDIDATE_LINE = (
    'CANDIDATE = load_candidate(CANDIDATE_SOURCE, PROVENANCE["kind"], PROVENANCE["name"])'
)

def read_export(text: str, origin: str, kinds: Collection[str] | None = None) -> ExportedCandidate:
    """Check an exported module's text without running it; raise ExportIntegrityError if it fails.

    The embedded code's sha256 must equal PROVENANCE["source_sha256"] and its content hash the
    recorded candidate id: an edit anywhere in the candidate's code, even a comment, is refused.
    With `kinds`, the recorded kind must be one of them.
    """
    try:
        constants = _literal_assignments(ast.parse(text), ("PROVENANCE", "CANDIDATE_SOURCE"))
    except (SyntaxError, ValueError) as exc:
        raise ExportIntegrityError(
            f"{origin} is not a file written by `optforge export`: {exc}"
        ) from None
    provenance, source = constants["PROVENANCE"], constants["CANDIDATE_SOURCE"]
    if not (isinstance(provenance, dict) and isinstance(source, str)):
        raise ExportIntegrityError(
            f"{origin}: PROVENANCE must be a dict and CANDIDATE_SOURCE a string"
        )
    recorded = provenance.get("source_sha256")
    if source_sha256(source) != recorded:
        raise ExportIntegrityError(
            f"{origin}: the candidate code does not match its recorded sha256 ({str(recorded)[:12]}...): "
            "it was edited after export; export it again, or import the file directly to run your edit"
        )
    if candidate_id(source) != provenance.get("candidate_id"):
        raise ExportIntegrityError(
            f"{origin}: the candidate code does not hash to the recorded candidate id"
        )
    if kinds is not None and provenance.get("kind") not in kinds:
        raise ExportIntegrityError(
            f"{origin}: unknown kind {provenance.get('kind')!r} in PROVENANCE: "
            f"this optforge knows {', '.join(kinds)}"
        )
    return ExportedCandidate(source, provenance)


def _literal_assignments(tree: ast.Module, names: Sequence[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in names:
                found[target.id] = ast.literal_eval(node.value)
    missing = [name for name in names if name not in found]
    if missing:
        raise ValueError(f"no {' or '.join(missing)} assignment")
    return found
