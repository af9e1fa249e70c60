"""`optforge llm calls DIR`: every LLM call of a campaign, and `--seq N`: one call's prompt and reply.

For a user debugging a model: which replies were rejected and why, and what the model actually
said. Only reads the archive, so it is safe while the campaign runs. Errors (no campaign in DIR, no
call numbered N) are one line, as the review commands' (agent/review/view.py `ReviewError`).
"""

from __future__ import annotations

import argparse
import json
import pathlib
from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from optforge.agent.cli.campaign_display import default_console
from optforge.agent.review.calls import (
    NumberedCall,
    call_json,
    outcome,
    outcome_text,
    short_model,
    time_text,
    totals_text,
)
from optforge.agent.review.view import ReviewError, opened
from optforge.archive import CandidateRecord


def add_calls_command(commands: argparse._SubParsersAction) -> None:
    calls = commands.add_parser(
        "calls",
        help="the campaign's LLM calls: tokens, latency and what each came to (a candidate, a "
        "rejected reply and why, an error); --seq N prints one call's prompt and reply",
    )
    calls.add_argument("dir", type=pathlib.Path, help="campaign directory (holds archive.sqlite)")
    which = calls.add_mutually_exclusive_group()
    which.add_argument("--last", type=int, metavar="N", help="only the last N calls (default: all)")
    which.add_argument("--seq", type=int, metavar="N", help="call number N in full: prompt and reply")
    calls.add_argument("--json", action="store_true", help="print JSON instead of text")
    calls.set_defaults(handler=cmd_llm_calls)


def cmd_llm_calls(args: argparse.Namespace) -> int:
    if args.last is not None and args.last < 1:
        raise ReviewError(f"--last must be at least 1, got {args.last}")
    with opened(args.dir) as store:
        if args.seq is not None:
            call = store.llm_call(args.seq)
            if call is None:
                total = store.counts().llm_calls
                held = f"it holds calls 1 to {total}" if total else "it holds no LLM calls"
                raise ReviewError(
                    f"no LLM call numbered {args.seq} in {args.dir}: {held}; "
                    f"`optforge llm calls {args.dir}` lists them"
                )
            numbered = [NumberedCall(args.seq, call)]
        else:
            numbered = [NumberedCall(seq, c) for seq, c in store.numbered_llm_calls(last=args.last)]
            total = store.counts().llm_calls
        candidates = {c.id: c for c in store.candidates()}
    if args.seq is not None:
        if args.json:
            print(json.dumps(call_json(numbered[0], candidates, full=True), indent=2))
        else:
            print_call(numbered[0], candidates)
    elif args.json:
        print(json.dumps([call_json(n, candidates) for n in numbered], indent=2))
    else:
        print_calls(numbered, total, candidates)
    return 0


def print_calls(
    numbered: Sequence[NumberedCall],
    total: int,
    candidates: Mapping[str, CandidateRecord],
    out: Console | None = None,
) -> None:
    out = out or default_console()
    if not numbered:
        out.print("the archive holds no LLM calls", markup=False, highlight=False)
        return
    shown = f"the last {len(numbered)} of {total}" if len(numbered) < total else f"{total}"
    table = Table(title=f"{shown} LLM calls (`--seq N` shows one's prompt and reply)")
    for column in ("#", "time", "model", "in", "out", "latency", "outcome"):
        right = column in ("#", "in", "out", "latency")
        table.add_column(column, justify="right" if right else "left", no_wrap=column != "outcome")
    for n in numbered:
        call = n.call
        kind = outcome(call)
        table.add_row(
            str(n.seq),
            time_text(call.created_at),
            Text(short_model(call.model)),
            f"{call.tokens_in:,}",
            f"{call.tokens_out:,}",
            f"{call.latency_s:.2f}s",
            Text(outcome_text(call, candidates), style="" if kind in ("candidate", "none") else "red"),
        )
    out.print(table)
    which = "in all" if len(numbered) == total else f"these {len(numbered)}"
    line = f"{which}: {totals_text([n.call for n in numbered])}"
    out.print(line, markup=False, highlight=False, soft_wrap=True)


def print_call(numbered: NumberedCall, candidates: Mapping[str, CandidateRecord]) -> None:
    """One call in full, as plain text (a prompt or reply may hold anything: no markup)."""
    call = numbered.call
    cost = "no known price" if call.cost_usd is None else f"${call.cost_usd:.4f}"
    lines = [
        f"call {numbered.seq}: {call.model}, {time_text(call.created_at)}",
        f"tokens: {call.tokens_in:,} in / {call.tokens_out:,} out; latency {call.latency_s:.2f}s; "
        f"cost {cost}",
        f"outcome: {outcome_text(call, candidates)}",
        "",
        "--- prompt ---",
        call.prompt if call.prompt is not None else _NOT_KEPT,
        "",
        "--- reply ---",
        _reply(call.reply, call.error is not None, call.prompt is not None),
    ]
    print("\n".join(lines).rstrip("\n"))


_NOT_KEPT = "(not recorded: the archive was written before optforge kept prompts and replies)"


def _reply(reply: str | None, failed: bool, kept: bool) -> str:
    if reply is not None:
        return reply
    if failed:
        return "(none: the request failed)"
    return _NOT_KEPT if not kept else "(none)"


__all__ = ["add_calls_command", "cmd_llm_calls"]
