"""`optforge llm check`: test the LLM set-up with one short request before a long campaign.

Exit status: 0 when the endpoint answered with code that passes the kind's contract; 1 when it
answered but the reply is not usable (a finding about the model, not the set-up); 2 when the request
failed or the configuration cannot work (one line on stderr saying what to do). The request and
what a failure means are agent/llm/check.py's; this module resolves the settings as `optforge run`
does, judges the reply as the llm proposer would, and prints.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from dataclasses import dataclass
from typing import Any

from optforge.agent.cli.campaign import CampaignUsageError, configured
from optforge.agent.cli.llm_calls import add_calls_command
from optforge.agent.llm.check import PROVIDER_DEFAULT, CheckOutcome, run_check
from optforge.agent.llm.client import LLMUnavailable
from optforge.agent.proposers.replies import CUT_OFF_NOTE, ReplyError, parse_reply
from optforge.tasks.contracts import KINDS, check_source

# Contract errors shown on the text output's `contract:` line (--json has them all).
SHOWN_CONTRACT_ERRORS = 2
EXIT = {"ok": 0, "unusable": 1, "failed": 2}


def add_llm_commands(sub: argparse._SubParsersAction) -> None:
    llm = sub.add_parser(
        "llm",
        help="the language model: `optforge llm check` tests the set-up, `optforge llm calls DIR` "
        "lists a campaign's calls",
    )
    commands = llm.add_subparsers(dest="llm_command", required=True)
    check = commands.add_parser(
        "check",
        help="send one short request to the configured LLM endpoint and say whether a campaign "
        "can use it (exit 0: yes; 1: it answers, but with unusable code; 2: it fails)",
    )
    check.add_argument("--config", type=pathlib.Path, help="campaign config (its [llm] table)")
    check.add_argument("--model", help="LLM model name (default: [llm] model, $OPTFORGE_LLM_MODEL)")
    check.add_argument(
        "--base-url", metavar="URL",
        help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (default: [llm] base_url, "
        "$OPTFORGE_LLM_BASE_URL, $OPENAI_BASE_URL, else the provider's)",
    )
    check.add_argument("--backend", choices=("openai", "litellm"), help="default: [llm] backend, openai")
    check.add_argument("--kind", choices=KINDS, help="the kind of candidate to ask for (default: the config's)")
    check.add_argument(
        "--timeout", type=_seconds, metavar="SECONDS",
        help="how long to wait for the reply (default: [llm] timeout_s, 120)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(handler=cmd_llm_check)
    add_calls_command(commands)


def cmd_llm_check(args: argparse.Namespace) -> int:
    config = configured(args.config, {
        "kind": args.kind,
        "llm.model": args.model,
        "llm.base_url": args.base_url,
        "llm.backend": args.backend,
        "llm.timeout_s": args.timeout,
    })
    try:
        outcome = run_check(config.llm, config.kind)
    except LLMUnavailable as exc:
        raise CampaignUsageError(str(exc)) from None
    report = check_report(outcome, config.kind)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in _text(report):
            print(line)
    if report["error"]:
        print(f"optforge: error: {report['error']}", file=sys.stderr)
    return EXIT[report["status"]]


@dataclass(frozen=True)
class Judgement:
    """What the llm proposer would make of a reply: its code's length, or why it is unusable."""

    code_lines: int | None
    reply_error: str | None
    contract_errors: list[str] | None  # None: no code to check


def judge(text: str, kind: str) -> Judgement:
    try:
        parsed = parse_reply(text)
    except ReplyError as exc:
        return Judgement(None, str(exc), None)
    if parsed.code is None:  # SEARCH/REPLACE edits: there is no parent to apply them to
        return Judgement(None, "it holds SEARCH/REPLACE edits, not a complete module", None)
    errors = check_source(parsed.code, kind)
    if errors and parsed.cut_off:
        errors = [CUT_OFF_NOTE, *errors]
    return Judgement(len(parsed.code.splitlines()), None, errors)


def check_report(outcome: CheckOutcome, kind: str) -> dict[str, Any]:
    """The check as one JSON-able dict (the --json output; the text output prints it)."""
    settings, reply = outcome.settings, outcome.reply
    report: dict[str, Any] = {
        "status": "failed",
        "endpoint": settings.base_url,
        "backend": settings.backend,
        "model": settings.model,
        "kind": kind,
        "api_key_variable": settings.key_variable,
        "max_tokens": settings.max_tokens,
        "timeout_s": settings.timeout_s,
        "latency_s": round(outcome.error.latency_s if outcome.error else 0.0, 3),
        "tokens_in": None,
        "tokens_out": None,
        "cost_usd": None,
        "reply": None,
        "contract_errors": None,
        "error": " ".join((outcome.advice or "").split()) or None,  # one line, always
    }
    if reply is None:
        return report
    judged = judge(reply.text, kind)
    usable = judged.reply_error is None and not judged.contract_errors
    report.update(
        status="ok" if usable else "unusable",
        latency_s=round(reply.latency_s, 3),
        tokens_in=reply.tokens_in,
        tokens_out=reply.tokens_out,
        cost_usd=reply.cost_usd,
        reply={"parsed": judged.reply_error is None, "code_lines": judged.code_lines,
               "error": judged.reply_error},
        contract_errors=judged.contract_errors,
    )
    return report


def _text(report: dict[str, Any]) -> list[str]:
    key = report["api_key_variable"]
    if key:
        key_line = f"set, from {key}"
    elif report["backend"] == "litellm":
        key_line = "not set here (litellm reads the provider's own variable, e.g. ANTHROPIC_API_KEY)"
    else:
        key_line = "not set (a local server may need none)"
    lines = [
        f"endpoint: {report['endpoint'] or PROVIDER_DEFAULT}",
        f"backend: {report['backend']}",
        f"model: {report['model']}",
        f"api key: {key_line}",
    ]
    if report["status"] == "failed":
        return [*lines, f"latency: {report['latency_s']:.2f} s (failed)"]
    tokens = (f"{report['tokens_in']} in, {report['tokens_out']} out"
              if report["tokens_in"] or report["tokens_out"] else "not reported by the server")
    lines += [f"latency: {report['latency_s']:.2f} s", f"tokens: {tokens}"]
    reply, errors = report["reply"], report["contract_errors"]
    if reply["parsed"]:
        lines.append(f"reply: parsed (code, {reply['code_lines']} lines)")
    else:
        lines.append(f"reply: not usable: {reply['error']}")
    if errors is None:
        lines.append("contract: not checked (no code)")
    elif errors:
        more = len(errors) - SHOWN_CONTRACT_ERRORS
        shown = "; ".join(errors[:SHOWN_CONTRACT_ERRORS]) + (f" (and {more} more)" if more > 0 else "")
        lines.append(f"contract: {shown}")
    else:
        lines.append("contract: passes")
    if report["status"] == "ok":
        lines.append(f"ok: the set-up works and the model wrote a valid {report['kind']} candidate")
    else:
        lines.append(
            "the set-up works (the endpoint answered), but the model's reply is not usable: a "
            "model-quality finding, not a set-up problem (try a stronger model)"
        )
    return lines


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value
