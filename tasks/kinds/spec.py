"""What a candidate kind is, as data: the `KindSpec` each module of this package defines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..contracts import CONTRACTS, Candidate, Contract

if TYPE_CHECKING:
    from ..proxy import ProxyTask
    from ..tier0 import Tier0Report
    from ..training import TrainSpec


def no_proxy_task(task: ProxyTask) -> bool:
    """KindSpec.runs_on of a kind scored on a task of its own (the preference or the scaling task)."""
    return False


@dataclass(frozen=True)
class SweepPlan:
    """The hyperparameter swept on every task (the shared grid of agent/config.py SweepConfig) and
    whose default places the grid's window: the candidate's own (an optimizer's HPARAMS) or the
    reference's (a loss or schedule trains with the reference optimizer, at its default)."""

    hyperparameter: Literal["lr", "beta"] = "lr"
    centre: Literal["candidate", "reference"] = "candidate"


@dataclass(frozen=True)
class ExportSpec:
    """How `optforge export` presents a candidate of the kind.

    `roots`: the names of tasks/contracts.py and tasks/adapters.py the file copies (and what they
    reference); `public_code`: the module's tail, written after the line that binds CANDIDATE;
    `usage`: lines for the file's docstring, with {module} and {file} filled in."""

    public_name: str
    roots: tuple[str, ...]
    public_code: str
    usage: tuple[str, ...]
    api_loader: str  # the optforge.load_* function that loads this kind from a file or an archive
    # What its scores mean, two docstring lines (None: against tuned AdamW, as the proxy tasks score)
    scoring: tuple[str, ...] | None = None


@dataclass(frozen=True)
class KindSpec:
    """Everything the trusted side needs to know about one kind of candidate."""

    name: str
    summary: str  # one line, for help texts: what a candidate of this kind is
    main_function: str  # the function that is the candidate's idea (shown in excerpts, mutated)
    baselines: str  # the subpackage of tasks/baselines holding its baseline files
    tier0: Callable[[Candidate, Tier0Report], None]  # conformance checks; fills the report
    train_spec: Callable[[Candidate, tuple[float, ...]], TrainSpec]  # what a training job runs
    runs_on: Callable[[ProxyTask], bool]  # which proxy tasks it can be scored on
    metric: Callable[[ProxyTask], str]  # the held-out metric that judges it on a task
    reference: tuple[str, str]  # (kind, baseline) it is scored against, tuned on the same grid
    sweep: SweepPlan | None  # None: the kind sets its hyperparameters itself (a scaling rule)
    export: ExportSpec
    # How a candidate is scored past tier 0: "proxy" trains the proxy tasks (tasks/proxy.py) with a
    # learning-rate sweep; "preference" aligns the char-GPT over a beta grid (tasks/preference/);
    # "scaling" trains the ResMLP at several widths with the rule's hyperparameters (tasks/scaling/).
    evaluation: Literal["proxy", "preference", "scaling"] = "proxy"
    reference_label: str = "tuned AdamW"  # what displays call the reference
    # Campaign defaults that depend on how far apart the kind's scores lie (a campaign's
    # [cascade] tier2_min_score and [search] temperature override them): the tier-1 score a new
    # candidate needs to be verified on tier 2, and the softmax temperature of parent selection.
    tier2_min_score: float = 1.0
    selection_temperature: float = 0.1

    @property
    def contract(self) -> Contract:
        return CONTRACTS[self.name]
