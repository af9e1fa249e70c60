"""Export an archived candidate as a standalone module that needs only torch (`optforge export`).

The archive renders the text (optforge.archive.export); this module supplies what the archive may
not import: the source of the adapters that scored the candidate (optforge.tasks.contracts and
optforge.tasks.adapters), so the exported file runs that very code, copied verbatim.
"""

from __future__ import annotations

import inspect
import os
import pathlib
import re
import tempfile
from datetime import UTC, datetime

from optforge.agent.campaign.directory import archive_path
from optforge.agent.campaign.rules import best_baseline
from optforge.agent.campaign.summary import SEED_PROPOSER
from optforge.archive import (
    ArchiveError,
    ArchiveStore,
    CandidateRecord,
    EvaluationRecord,
    candidate_id,
)
from optforge.archive.export import BaselineComparison, PublicObject, render_export
from optforge.archive.export_source import Emitted, emit_definitions
from optforge.tasks import adapters, contracts
from optforge.tasks.kinds import KINDS, kind_spec


class ExportError(ValueError):
    """Bad input to export or load (no campaign, unknown id, file exists): one line for the user."""


def runtime_source(kind: str) -> Emitted:
    """The adapter code an export of `kind` needs, copied from the modules that scored it."""
    modules = [(m.__name__, inspect.getsource(m)) for m in (contracts, adapters)]
    return emit_definitions(modules, kind_spec(kind).export.roots)


def archived_candidate(
    directory: pathlib.Path, prefix: str
) -> tuple[CandidateRecord, list[EvaluationRecord]]:
    """The candidate whose id starts with `prefix` in campaign `directory`, checked against its id."""
    path = archive_path(directory)
    if not path.is_file():
        raise ExportError(f"no campaign in {directory} (no {path.name}): give a campaign directory")
    try:
        with ArchiveStore.open(path) as store:
            record = store.find(prefix)
            evaluations = store.evaluations(candidate_id=record.id)
    except ArchiveError as exc:
        raise ExportError(
            f"{exc} (in {path}; `optforge ls {directory}` lists the ids)"
        ) from None
    if candidate_id(record.source) != record.id:
        raise ExportError(
            f"candidate {record.id[:12]} in {path} does not hash to its id: the archive was altered"
        )
    return record, evaluations


def baseline_comparison(
    directory: pathlib.Path, record: CandidateRecord, evaluations: list[EvaluationRecord]
) -> BaselineComparison:
    """`record` (its `evaluations`) against the campaign's best tuned baseline on tier 2 (another
    one, when `record` is itself a baseline)."""
    with ArchiveStore.open(archive_path(directory)) as store:
        seeds = {
            c.id: c.name
            for c in store.candidates()
            if c.proposer == SEED_PROPOSER and c.id != record.id
        }
        tier2 = store.evaluations(tier=2)
    mine = next((e for e in evaluations if e.tier == 2 and e.passed), None)
    baseline, comparison = best_baseline(mine, [e for e in tier2 if e.candidate_id in seeds])
    if baseline is None:
        return BaselineComparison(None)
    name = seeds[baseline.candidate_id]
    if comparison is None or mine is None:
        return BaselineComparison(name, baseline.score)
    ratio, ci = comparison
    return BaselineComparison(name, baseline.score, ratio, ci, mine.seeds, len(mine.tasks))


def default_filename(record: CandidateRecord) -> str:
    """`<name>_<id8>.py`, the name made an importable module name."""
    stem = re.sub(r"\W", "_", record.name.lower(), flags=re.ASCII).strip("_") or record.kind
    if stem[0].isdigit():
        stem = f"{record.kind}_{stem}"
    return f"{stem}_{record.id[:8]}.py"


def export_candidate(
    directory: pathlib.Path, prefix: str, output: pathlib.Path | None = None, force: bool = False
) -> tuple[CandidateRecord, pathlib.Path]:
    """Write candidate `prefix` of campaign `directory` to `output` (default ./<name>_<id8>.py)."""
    record, evaluations = archived_candidate(directory, prefix)
    if record.kind not in KINDS:
        raise ExportError(f"cannot export a {record.kind} candidate: only {', '.join(KINDS)}")
    export = kind_spec(record.kind).export
    output = output or pathlib.Path(default_filename(record))
    if output.suffix != ".py":
        raise ExportError(f"{output}: the exported file must end in .py (it is a Python module)")
    text = render_export(
        record,
        evaluations,
        campaign=str(directory.resolve()),
        runtime=runtime_source(record.kind),
        exported_at=datetime.now(UTC),
        public=PublicObject(
            export.public_code,
            tuple(line.format(module=output.stem, file=output.name) for line in export.usage),
            *((export.scoring,) if export.scoring else ()),
        ),
        baseline=baseline_comparison(directory, record, evaluations),
    )
    _write(output, text, force)
    return record, output


def _write(path: pathlib.Path, text: str, force: bool) -> None:
    if not path.parent.is_dir():
        raise ExportError(f"{path.parent} is not a directory: create it or choose another -o")
    if not force:
        try:
            with path.open("x", encoding="utf-8") as file:  # "x": never overwrite, even in a race
                file.write(text)
        except FileExistsError:
            raise ExportError(
                f"{path} exists: pass --force to overwrite it, or choose -o"
            ) from None
        return
    # --force: write aside and rename, so a failure never leaves a half-written module behind.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
