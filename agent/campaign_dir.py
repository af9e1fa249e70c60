"""A campaign's directory and the config in force: the stored config plus the overrides each resume
recorded (a resume may raise budgets or change the workers, nothing that decides what the archive
means)."""

from __future__ import annotations

import pathlib
from typing import Any

from optforge.archive import ArchiveStore

from .config import CampaignConfig

ARCHIVE_FILE = "archive.sqlite"
CONFIG_COPY = "campaign.toml"  # the effective config at creation, for people to read
# Settings a resume may change: how much more to spend and how to run it here. The rest decides
# what the archive means (kind, tasks, seeds, search) and stays as created.
RESUME_OVERRIDES = {
    ("budget", "max_candidates"),
    ("budget", "max_llm_cost_usd"),
    ("budget", "max_wall_minutes"),
    ("evaluation", "sandbox", "workers"),
    ("evaluation", "sandbox", "allow_unisolated"),
}


def archive_path(directory: pathlib.Path) -> pathlib.Path:
    return directory / ARCHIVE_FILE


def effective_config(store: ArchiveStore) -> CampaignConfig:
    """The stored config with every override a resume recorded, in order."""
    data = store.config()
    for event in store.events():
        if event.kind in ("start", "resume"):
            for dotted, value in event.data.get("overrides", {}).items():
                _set(data, tuple(dotted.split(".")), value)
    return CampaignConfig.model_validate(data)


def with_overrides(config: CampaignConfig, overrides: dict[str, Any]) -> CampaignConfig:
    """`config` with dotted-key overrides applied and validated (ValidationError on bad values)."""
    data = config.model_dump(mode="json")
    for dotted, value in overrides.items():
        _set(data, tuple(dotted.split(".")), value)
    return CampaignConfig.model_validate(data)


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value
