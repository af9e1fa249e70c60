"""The campaign commands: `optforge init`, `run`, `resume` and `status` (thin shells over
agent/campaign/loop.py, agent/config_file.py and agent/campaign/summary.py)."""

from __future__ import annotations

import argparse
import json
import pathlib
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from types import FrameType
from typing import Any

from pydantic import ValidationError

from optforge.agent.campaign.directory import (
    CONFIG_COPY,
    RESUME_OVERRIDES,
    archive_path,
    effective_config,
    set_dotted,
    with_overrides,
)
from optforge.agent.campaign.loop import Campaign, CampaignParts
from optforge.agent.campaign.summary import summarize
from optforge.agent.cli.campaign_display import LiveDisplay, print_status, print_summary
from optforge.agent.config import CampaignConfig, cache_dir
from optforge.agent.config_file import (
    ConfigFileError,
    config_to_toml,
    load_config,
    write_default_config,
)
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.evaluation.runtime import open_runner, task_data
from optforge.agent.llm.client import LLMUnavailable
from optforge.agent.proposers.base import Proposer
from optforge.agent.proposers.factory import build_proposer
from optforge.archive import ArchiveError, ArchiveStore
from optforge.tasks.contracts import KINDS


class CampaignUsageError(Exception):
    """Bad input from the user: one line, exit status 2."""


def add_commands(sub: argparse._SubParsersAction) -> None:
    init = sub.add_parser("init", help="write an annotated default campaign config (TOML)")
    init.add_argument("file", nargs="?", type=pathlib.Path, default=pathlib.Path("campaign.toml"))
    init.set_defaults(handler=cmd_init)

    run = sub.add_parser("run", help="start a discovery campaign (or resume the one in --dir)")
    run.add_argument("--config", type=pathlib.Path, help="campaign config (see `optforge init`)")
    run.add_argument("--kind", choices=KINDS, help="what to discover (default: optimizer)")
    run.add_argument(
        "--dir", type=pathlib.Path, help="campaign directory (default: runs/<kind>-<time>)"
    )
    run.add_argument(
        "--proposer",
        choices=("llm", "mutate", "mix"),
        help="default: llm if configured, else mutate",
    )
    run.add_argument(
        "--model", help="LLM model name (implies the llm proposer unless --proposer says otherwise)"
    )
    run.add_argument(
        "--start-from",
        type=_names,
        metavar="NAME,...",
        help="the bundled baselines the search starts from, comma-separated (default: all of the "
        "kind's; each costs a tier-1 evaluation before the first new candidate)",
    )
    _add_spending(run)
    run.set_defaults(handler=cmd_run)

    resume = sub.add_parser("resume", help="continue a stopped or killed campaign")
    resume.add_argument("dir", type=pathlib.Path)
    _add_spending(resume)
    resume.set_defaults(handler=cmd_resume)

    status = sub.add_parser("status", help="where a campaign stands (safe while it runs)")
    status.add_argument("dir", type=pathlib.Path)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=cmd_status)


def add_sandbox_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sandbox", choices=("process", "docker"),
        help="where candidates run: bubblewrapped processes (default) or Docker containers "
        "(build the image first: optforge sandbox build)",
    )
    parser.add_argument(
        "--executor", choices=("local", "ray"),
        help="where sandbox jobs run: this machine's workers (default) or Ray actors, one warm "
        "sandbox worker each (pip install 'optforge[ray]')",
    )
    parser.add_argument(
        "--ray-address", metavar="ADDRESS",
        help="the Ray cluster to join (\"auto\" or host:port; implies --executor ray); default: "
        "a private Ray instance on this machine",
    )


    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"),
        help="where the proxy tasks train (default auto: CUDA when the workers can have a GPU)",
    )


def executor_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """--executor/--ray-address/--device as dotted config keys (an address means Ray)."""
    engine = args.executor or ("ray" if args.ray_address else None)
    if engine == "local" and args.ray_address:
        raise CampaignUsageError("--ray-address needs --executor ray (or no --executor)")
    return {"evaluation.executor.engine": engine, "evaluation.executor.address": args.ray_address,
            "evaluation.device": args.device}


def _add_spending(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--budget", type=int, help="stop after this many new candidates (seeds excluded)"
    )
    parser.add_argument(
        "--max-minutes", type=float, help="stop after this much wall time (over resumes)"
    )
    parser.add_argument("--max-cost", type=float, help="stop once LLM spend reaches this many USD")
    parser.add_argument("--workers", type=int, help="sandbox workers (default: one per CPU core)")
    add_sandbox_flag(parser)
    parser.add_argument(
        "--allow-unisolated",
        action="store_true",
        help="run without bubblewrap: candidates get NO network or filesystem isolation",
    )


# -- commands -----------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    write_default_config(args.file)
    print(f"wrote {args.file}: edit it, then `optforge run --config {args.file}`")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    directory = (
        args.dir
        or pathlib.Path("runs") / f"{args.kind or 'optimizer'}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    if archive_path(directory).exists():
        fixed = {
            "--config": args.config,
            "--kind": args.kind,
            "--proposer": args.proposer,
            "--model": args.model,
            "--start-from": args.start_from,
        }
        given = [flag for flag, value in fixed.items() if value is not None]
        if given:
            raise CampaignUsageError(
                f"{directory} already holds a campaign and {', '.join(given)} cannot change it: "
                f"run `optforge resume {directory}` or choose a new --dir"
            )
        return _resume(directory, args)
    config = _validated(_new_config(args))
    proposer = _proposer(config)  # before the archive: a missing API key leaves nothing behind
    task_data(config.kind)  # likewise a missing corpus; prepares the preference task once if needed
    directory.mkdir(parents=True, exist_ok=True)
    store = ArchiveStore.create(archive_path(directory), config.model_dump(mode="json"))
    (directory / CONFIG_COPY).write_text(config_to_toml(config), encoding="utf-8")
    print(
        f"campaign: {directory} ({config.kind}, budget {config.budget.max_candidates} candidates)"
    )
    return _run(store, config, {}, proposer)


def cmd_resume(args: argparse.Namespace) -> int:
    return _resume(args.dir, args)


def cmd_status(args: argparse.Namespace) -> int:
    store = _open(args.dir, readonly_hint=True)
    with store:
        summary = summarize(store)
    if args.json:
        data = asdict(summary)
        data["statuses"] = dict(summary.statuses)  # asdict rebuilds a Counter from its items
        print(json.dumps(_jsonable(data), indent=2, default=str))
    else:
        print_status(summary)
    return 0


# -- plumbing -----------------------------------------------------------------------------------


def _new_config(args: argparse.Namespace) -> dict[str, Any]:
    chosen: dict[str, Any] = {
        "kind": args.kind,
        "proposer": args.proposer,
        "llm.model": args.model,
        "start_from": args.start_from,
    }
    if args.model and not args.proposer:
        chosen["proposer"] = "llm"  # naming a model means using it
    chosen.update(_spending(args))
    return _config_data(args.config, chosen)


def configured(path: pathlib.Path | None, chosen: dict[str, Any]) -> CampaignConfig:
    """The config `run` would use: the file at `path` (default: the defaults) with the flags'
    values `chosen` (dotted keys; None: not given) on top. The environment fills the [llm] settings
    the result leaves unset later (agent/config.py resolve_llm_config). One-line errors."""
    return _validated(_config_data(path, chosen))


def _config_data(path: pathlib.Path | None, chosen: dict[str, Any]) -> dict[str, Any]:
    config = load_config(path) if path else CampaignConfig()
    data = config.model_dump(mode="json")
    for dotted, value in chosen.items():
        if value is not None:
            set_dotted(data, dotted, value)
    return data


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one baseline, e.g. adamw,nesterov")
    return names


def _spending(args: argparse.Namespace) -> dict[str, Any]:
    """The resumable overrides the flags ask for, as dotted keys (see RESUME_OVERRIDES)."""
    chosen = {
        "budget.max_candidates": args.budget,
        "budget.max_wall_minutes": args.max_minutes,
        "budget.max_llm_cost_usd": args.max_cost,
        "evaluation.sandbox.workers": args.workers,
        "evaluation.sandbox.allow_unisolated": True if args.allow_unisolated else None,
        "evaluation.sandbox.backend": args.sandbox,
        **executor_overrides(args),
    }
    overrides = {key: value for key, value in chosen.items() if value is not None}
    assert all(tuple(k.split(".")) in RESUME_OVERRIDES for k in overrides)
    return overrides


def _validated(data: dict[str, Any]) -> CampaignConfig:
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as exc:
        raise CampaignUsageError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
        for e in exc.errors()
    ]
    return "invalid campaign setting: " + "; ".join(problems)


def _resume(directory: pathlib.Path, args: argparse.Namespace) -> int:
    store = _open(directory)
    overrides = _spending(args)
    try:
        config = with_overrides(effective_config(store), overrides)
    except ValidationError as exc:
        store.close()
        raise CampaignUsageError(_one_line(exc)) from None
    print(f"resuming {directory} ({config.kind}, budget {config.budget.max_candidates} candidates)")
    try:
        proposer = _proposer(config)
    except CampaignUsageError:
        store.close()
        raise
    return _run(store, config, overrides, proposer)


def _open(directory: pathlib.Path, readonly_hint: bool = False) -> ArchiveStore:
    path = archive_path(directory)
    if not path.exists():
        raise CampaignUsageError(
            f"no campaign in {directory} (no {path.name}): start one with `optforge run --dir {directory}`"
        )
    try:
        return ArchiveStore.open(path)
    except ArchiveError as exc:
        raise CampaignUsageError(str(exc)) from None


def _proposer(config: CampaignConfig) -> Proposer:
    """The configured proposer (printing its notice, if any); a backend that cannot work as
    configured (no API key, litellm not installed) is a usage error, one line, exit 2."""
    try:
        proposer, notice = build_proposer(config)
    except LLMUnavailable as exc:
        raise CampaignUsageError(str(exc)) from None
    if notice:
        print(f"optforge: {notice}", file=sys.stderr)
    return proposer


def _run(
    store: ArchiveStore, config: CampaignConfig, overrides: dict[str, Any], proposer: Proposer
) -> int:
    directory = store.path.parent
    try:
        with (
            sigterm_as_interrupt(),
            open_runner(config.evaluation.sandbox, cache_dir(), campaign=str(directory.resolve()),
                        kind=config.kind, executor=config.evaluation.executor,
                        device=config.evaluation.device) as runner,
            LiveDisplay() as display,
        ):
            parts = CampaignParts(
                runner,
                BaselineCache(cache_dir()),
                proposer,
                on_progress=display.update,
                on_log=display.log,
            )
            Campaign(store, config, parts).run(overrides)
        print_summary(summarize(store))
    except KeyboardInterrupt:
        print(
            f"optforge: interrupted; every sandbox process was stopped and everything evaluated is "
            f"kept in {store.path}. Resume with: optforge resume {directory}",
            file=sys.stderr,
        )
        return 130
    finally:
        store.close()
    return 0


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (e.g. from a job scheduler) stops the command as cleanly as Ctrl-C does: without
    it Python dies at once, skipping the finalizers that stop sandbox workers and containers."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, pathlib.Path):
        return str(value)
    return value


__all__ = [
    "CampaignUsageError",
    "ConfigFileError",
    "add_commands",
    "configured",
    "sigterm_as_interrupt",
]
