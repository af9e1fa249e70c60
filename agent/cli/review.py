"""The review commands: `optforge ls`, `show`, `diff`, `lineage` and `report` (thin shells over
agent/review/view.py and agent/review/report.py). Each only reads the archive, so each is safe while the
campaign runs; each takes `--json` for scripts."""

from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any

from optforge.agent.cli.review_display import print_diff, print_lineage, print_ls, print_show
from optforge.agent.review.report import build_report
from optforge.agent.review.view import (
    ReviewError,
    detail_json,
    diff_pair,
    lineage,
    lineage_json,
    listed,
    opened,
    read_view,
    resolve,
    row_json,
    unified_diff,
)
from optforge.tasks.contracts import KINDS


def add_review_commands(sub: argparse._SubParsersAction) -> None:
    ls = _command(sub, "ls", "candidates ranked, verified on tier 2 first (safe while it runs)")
    ls.add_argument("--top", type=int, help="show only the best N (after filters)")
    ls.add_argument(
        "--by",
        choices=("tier2", "tier1"),
        default="tier2",
        help="tier2 (default): verified on held-out tier 2 first, by tier-2 score, then tier-1-only "
        "ones by tier-1 score; tier1: by the tier-1 (screen) score alone",
    )
    ls.add_argument("--kind", choices=KINDS, help="only candidates of this kind")
    ls.add_argument("--status", help="only this status (ok, failed_tier0, diverged, pending, ...)")
    ls.set_defaults(handler=cmd_ls)

    show = _command(
        sub, "show", "one candidate: code, per-task scores against the baselines, lineage"
    )
    show.add_argument("id", help="candidate id or a unique prefix of it")
    show.set_defaults(handler=cmd_show)

    diff = _command(sub, "diff", "unified diff of a candidate against its first parent (or ID2)")
    diff.add_argument("id", help="candidate id or a unique prefix")
    diff.add_argument("id2", nargs="?", help="compare ID (old) with ID2 (new) instead")
    diff.set_defaults(handler=cmd_diff)

    tree = _command(sub, "lineage", "a candidate's ancestry tree with scores")
    tree.add_argument("id", help="candidate id or a unique prefix")
    tree.set_defaults(handler=cmd_lineage)

    report = sub.add_parser("report", help="write a self-contained HTML report of a campaign")
    report.add_argument("dir", type=pathlib.Path, help="campaign directory")
    report.add_argument("-o", "--output", type=pathlib.Path, help="default: DIR/report.html")
    report.add_argument(
        "--top", type=int, default=5, help="candidates in the top table (default 5)"
    )
    report.add_argument("--json", action="store_true", help="print where it was written as JSON")
    report.set_defaults(handler=cmd_report)


def _command(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text)
    parser.add_argument("dir", type=pathlib.Path, help="campaign directory (holds archive.sqlite)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def cmd_ls(args: argparse.Namespace) -> int:
    if args.top is not None and args.top < 1:
        raise ReviewError(f"--top must be at least 1, got {args.top}")
    with opened(args.dir) as store:
        view = read_view(store)
    chosen = listed(view, args.top, args.kind, args.status, args.by)
    if args.json:
        _print_json([row_json(rank, row, args.by) for rank, row in chosen])
    else:
        print_ls(chosen, len(view.rows), args.by)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with opened(args.dir) as store:
        candidate = resolve(store, args.id)
        view = read_view(
            store
        )  # after `resolve`: the archive only grows, so it holds the candidate
    if args.json:
        _print_json(detail_json(view, candidate))
    else:
        print_show(view, candidate)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    with opened(args.dir) as store:
        old, new = diff_pair(store, args.id, args.id2)
    lines = unified_diff(old, new)
    if args.json:
        _print_json({"old": old.id, "new": new.id, "diff": "\n".join(lines)})
    else:
        print_diff(lines)
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    with opened(args.dir) as store:
        candidate = resolve(store, args.id)
        view = read_view(store)
    root = lineage(view, candidate.id)
    if args.json:
        _print_json(lineage_json(root))
    else:
        print_lineage(root)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ReviewError(f"--top must be at least 1, got {args.top}")
    output = args.output or (args.dir if args.dir.is_dir() else args.dir.parent) / "report.html"
    if output.is_dir():
        raise ReviewError(
            f"{output} is a directory: give a file name, e.g. -o {output / 'report.html'}"
        )
    with opened(args.dir) as store:
        html_text = build_report(store, top=args.top)
    try:
        output.write_text(html_text, encoding="utf-8")
    except OSError as exc:
        raise ReviewError(f"cannot write {output}: {exc.strerror}") from None
    if args.json:
        _print_json({"output": str(output), "bytes": len(html_text.encode("utf-8"))})
    else:
        print(
            f"wrote {output} ({len(html_text) // 1024} KiB): open it in a browser, it works offline"
        )
    return 0


__all__ = ["ReviewError", "add_review_commands"]
