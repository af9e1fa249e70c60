"""Write the fixed mix of archived children used by the throughput benchmark and the batching
equivalence tests: 10 children that were batch-safe in the committed 200-candidate campaign and 10
that were not, each group spread evenly over its tier-1 score range (so the mix is not only the top).

    mkdir -p runs && tar -xJf benchmarks/campaigns/optimizer-mutate-200.tar.xz -C runs
    .venv/bin/python benchmarks/extract_children.py runs/issue3-200/archive.sqlite

It rewrites benchmarks/archived_children/ (one file per child and manifest.json); the selection is
deterministic, so rerunning it on the same archive changes nothing.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sqlite3

OUT = pathlib.Path(__file__).parent / "archived_children"
PER_GROUP = 10

QUERY = """
SELECT c.id, c.name, c.source, t0.batch_safe, t1.score, t1.seconds
FROM candidates c
JOIN evaluations t0 ON t0.candidate_id = c.id AND t0.tier = 0 AND t0.status = 'ok'
JOIN evaluations t1 ON t1.candidate_id = c.id AND t1.tier = 1 AND t1.reused_from IS NULL
WHERE c.proposer != 'seed' AND t1.score IS NOT NULL
ORDER BY t1.score, c.id
"""


def spread(rows: list[tuple], count: int) -> list[tuple]:
    """`count` rows evenly spaced over `rows` (sorted by score), both ends included."""
    if len(rows) <= count:
        return rows
    return [rows[round(i * (len(rows) - 1) / (count - 1))] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=pathlib.Path)
    args = parser.parse_args()
    rows = sqlite3.connect(args.archive).execute(QUERY).fetchall()
    chosen = [r for safe in (1, 0) for r in spread([r for r in rows if r[3] == safe], PER_GROUP)]
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.py"):
        old.unlink()
    manifest = []
    for cid, name, source, batch_safe, score, seconds in chosen:
        filename = f"{name.replace('-', '_')}_{cid[:8]}.py"
        (OUT / filename).write_text(source)
        manifest.append({"file": filename, "id": cid, "name": name, "batch_safe_in_archive": bool(batch_safe),
                         "tier1_score": round(score, 4), "tier1_seconds": round(seconds, 1)})
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(manifest)} children written to {OUT}")


if __name__ == "__main__":
    main()
