"""`optforge export DIR ID [-o FILE.py] [--force]`: a thin shell over agent/export.py."""

from __future__ import annotations

import argparse
import pathlib
import sys

from optforge.agent.export import ExportError, export_candidate
from optforge.tasks.kinds import kind_spec


def add_export_command(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser(
        "export", help="write a candidate as a standalone PyTorch module (needs only torch)"
    )
    export.add_argument("dir", type=pathlib.Path, help="campaign directory")
    export.add_argument("id", help="candidate id or a unique prefix (see `optforge ls DIR`)")
    export.add_argument(
        "-o", "--output", type=pathlib.Path, help="file to write (default: ./<name>_<id8>.py)"
    )
    export.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    export.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    try:
        record, path = export_candidate(args.dir, args.id, args.output, args.force)
    except ExportError as exc:
        print(f"optforge: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}: {record.kind} {record.name!r} ({record.id[:12]})")
    print(f"use it: from {path.stem} import {kind_spec(record.kind).export.public_name}")
    return 0
