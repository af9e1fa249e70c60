"""Use discovered candidates in your own training code: `optforge.load_optimizer` and friends.

`source` is either a file written by `optforge export`, or "DIR:ID": a campaign directory and a
candidate id (or a unique prefix of one). Either way you get the adapter the candidate was scored
through (optforge.tasks.adapters), so what you train with is what was scored.

Loading RUNS CODE in your process with your permissions: the candidate's code, and for a file the
whole file. The sandbox protects scoring, not this; load only files and campaigns you trust. Before
running anything the content hash is checked (a file: its embedded code against the sha256 it
records; an archive: the code against the candidate's id), and a mismatch raises.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
from types import ModuleType

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.optimizer import ParamsT

from optforge.archive.export import read_export
from optforge.tasks.adapters import (
    CandidateLoss,
    CandidateOptimizer,
    CandidatePreferenceLoss,
    CandidateScalingRule,
    candidate_scheduler,
)
from optforge.tasks.contracts import Candidate, load_candidate
from optforge.tasks.kinds import KINDS, kind_spec

from .export import ExportError, archived_candidate

Source = str | os.PathLike[str]


def load_optimizer(source: Source, params: ParamsT, **hparams: float) -> torch.optim.Optimizer:
    """A torch.optim.Optimizer running an exported or archived optimizer candidate.

    `hparams` override the candidate's HPARAMS (lr, betas, ...). This runs the candidate's code:
    load only what you trust (see the module docstring). Raises ExportIntegrityError when the
    code does not match its recorded hash, ExportError for a bad `source`.
    """
    module = _exported_module(source, "optimizer")
    if module is not None:
        optimizer: torch.optim.Optimizer = module.DiscoveredOptimizer(params, **hparams)
        return optimizer
    return CandidateOptimizer(params, _archived(source, "optimizer"), **hparams)


def load_loss(source: Source) -> nn.Module:
    """An nn.Module computing an exported or archived loss candidate: (logits, targets) -> scalar.

    This runs the candidate's code: load only what you trust (see the module docstring).
    """
    module = _exported_module(source, "loss")
    if module is not None:
        loss: nn.Module = module.DiscoveredLoss()
        return loss
    return CandidateLoss(_archived(source, "loss"))


def load_preference_loss(source: Source) -> nn.Module:
    """An nn.Module computing an exported or archived preference loss, DiscoPOP's signature:
    (policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps,
    beta) -> per-pair losses [B]; a DPO step minimises their mean.

    This runs the candidate's code: load only what you trust (see the module docstring).
    """
    module = _exported_module(source, "preference_loss")
    if module is not None:
        loss: nn.Module = module.DiscoveredPreferenceLoss()
        return loss
    return CandidatePreferenceLoss(_archived(source, "preference_loss"))


def load_scaling_rule(source: Source) -> CandidateScalingRule:
    """An exported or archived scaling rule as a guarded function: rule(width, base_width, group,
    base) -> {"lr", "weight_decay"}. Build AdamW param groups for a wider model with
    optforge.tasks.adapters.scaled_param_groups(model, rule, width, base_width, base) (an exported
    file also has its own `param_groups`).

    This runs the candidate's code: load only what you trust (see the module docstring).
    """
    module = _exported_module(source, "scaling_rule")
    if module is not None:
        rule: CandidateScalingRule = module.discovered_scale
        return rule
    return CandidateScalingRule(_archived(source, "scaling_rule"))


def load_schedule(source: Source, optimizer: torch.optim.Optimizer, total_steps: int) -> LambdaLR:
    """A LambdaLR driving `optimizer` by an exported or archived schedule candidate.

    Call scheduler.step() after each optimizer.step(). This runs the candidate's code: load only
    what you trust (see the module docstring).
    """
    module = _exported_module(source, "schedule")
    if module is not None:
        scheduler: LambdaLR = module.discovered_schedule(optimizer, total_steps)
        return scheduler
    return candidate_scheduler(optimizer, _archived(source, "schedule"), total_steps)


def _exported_module(source: Source, kind: str) -> ModuleType | None:
    """The exported file's module, checked then imported; None when `source` names DIR:ID."""
    path = pathlib.Path(source)
    if not path.is_file():
        if _split_archive_source(source) is None:
            raise ExportError(
                f"{source}: no such file; give an exported .py file or DIR:ID (a campaign "
                "directory and a candidate id)"
            )
        return None
    exported = read_export(path.read_text(encoding="utf-8"), str(path), KINDS)
    _require_kind(exported.kind, kind, str(path))
    name = f"optforge_export_{exported.provenance['source_sha256'][:16]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ExportError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses look their module up while the module executes.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _archived(source: Source, kind: str) -> Candidate:
    split = _split_archive_source(source)
    assert split is not None  # _exported_module returned None only for DIR:ID sources
    directory, prefix = split
    record, _ = archived_candidate(directory, prefix)
    _require_kind(record.kind, kind, str(source))
    return load_candidate(record.source, record.kind, record.name)


def _split_archive_source(source: Source) -> tuple[pathlib.Path, str] | None:
    """("DIR", "ID") from "DIR:ID" (split at the last colon), None when it is not of that form."""
    directory, colon, prefix = str(source).rpartition(":")
    if not colon or not directory or not prefix:
        return None
    return pathlib.Path(directory), prefix


def _require_kind(found: str, wanted: str, origin: str) -> None:
    if found != wanted:
        hint = f"; use optforge.{kind_spec(found).export.api_loader}" if found in KINDS else ""
        raise ExportError(
            f"{origin} is of kind {found!r}, optforge.{kind_spec(wanted).export.api_loader} loads "
            f"kind {wanted!r}{hint}"
        )


__all__ = ["load_loss", "load_optimizer", "load_preference_loss", "load_scaling_rule", "load_schedule"]
