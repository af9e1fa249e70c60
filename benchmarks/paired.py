"""Paired tier-2 comparisons between candidates of one campaign archive, seed by seed.

    .venv/bin/python benchmarks/paired.py runs/scaling-40 97fed827 mup mup_wd_sqrt constant

prints, for the first candidate (an id prefix or a name) against each of the others, the ratio of
the other's held-out final over the first's (geometric mean over tasks; > 1: the first is better;
for the preference task's area, the first's over the other's) with its 95% bootstrap CI over seeds,
as `optforge status` does for the champion against the best baseline.
"""

from __future__ import annotations

import argparse
import pathlib

from optforge.agent.campaign.rules import paired_comparison
from optforge.archive import ArchiveStore, EvaluationRecord


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("campaign", type=pathlib.Path)
    parser.add_argument("first")
    parser.add_argument("others", nargs="+")
    args = parser.parse_args()
    with ArchiveStore.open(args.campaign / "archive.sqlite") as store:
        names = {c.id: c.name for c in store.candidates()}
        tier2 = {e.candidate_id: e for e in store.evaluations(tier=2) if e.passed}

    def find(key: str) -> EvaluationRecord:
        matches = [cid for cid in tier2 if cid.startswith(key) or names[cid] == key]
        if len(matches) != 1:
            raise SystemExit(f"{key!r} names {len(matches)} candidates with a tier-2 result, not one")
        return tier2[matches[0]]

    first = find(args.first)
    for other in map(find, args.others):
        result = paired_comparison(first, other)
        if result is None:
            print(f"{names[first.candidate_id]} vs {names[other.candidate_id]}: cannot be paired")
            continue
        ratio, (low, high) = result
        print(f"{names[first.candidate_id]} vs {names[other.candidate_id]}: {ratio:.3f} "
              f"[{low:.3f}, {high:.3f}] over {first.seeds} seeds x {len(first.tasks)} tasks")


if __name__ == "__main__":
    main()
