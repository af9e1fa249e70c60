"""optforge: discover optimizers, losses, LR schedules, preference losses and width-scaling rules;
use the winners in your own training.

    optforge.load_optimizer(source, params, **hparams)   -> torch.optim.Optimizer
    optforge.load_loss(source)                          -> nn.Module
    optforge.load_schedule(source, optimizer, total_steps) -> LambdaLR
    optforge.load_preference_loss(source)               -> nn.Module (DiscoPOP's signature)
    optforge.load_scaling_rule(source)                  -> scale(width, base_width, group, base), guarded

`source` is a file written by `optforge export` or "DIR:ID" (a campaign directory and a candidate
id or prefix). Loading runs the candidate's code in your process: see optforge.agent.api.

This package's own folder is agent/_root (pyproject.toml maps it): the repository's top level is
fixed. The loaders are imported lazily, so `import optforge.sandbox` (the sandbox worker) does not
pay for torch and the agent here.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = ("load_optimizer", "load_loss", "load_schedule", "load_preference_loss", "load_scaling_rule")

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("optforge.agent.api"), name)
    raise AttributeError(f"module 'optforge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
