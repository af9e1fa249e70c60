"""A campaign's directory and the config in force: the stored config plus the overrides each resume
recorded (a resume may raise budgets or change the workers, nothing that decides what the archive
means)."""

from __future__ import annotations

import copy
import pathlib
from collections.abc import Iterable
from typing import Any

from optforge.agent.config import STORED_CONFIG, CampaignConfig
from optforge.archive import ArchiveStore, EventRecord

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
    ("evaluation", "sandbox", "backend"),
    # Where jobs run, not what they compute: scores are the same on any executor.
    ("evaluation", "executor", "engine"),
    ("evaluation", "executor", "address"),
    # Where the proxy tasks train; each evaluation's environment records the device it used.
    ("evaluation", "device"),
}


def archive_path(directory: pathlib.Path) -> pathlib.Path:
    return directory / ARCHIVE_FILE


def effective_config(store: ArchiveStore) -> CampaignConfig:
    """The config in force in a stored campaign (see `config_in_force`)."""
    return config_in_force(store.config(), store.events())


def config_in_force(created: dict[str, Any], events: Iterable[EventRecord]) -> CampaignConfig:
    """The config as created with every override a start or resume recorded, in order."""
    data = copy.deepcopy(created)
    for event in events:
        if event.kind in ("start", "resume"):
            for dotted, value in event.data.get("overrides", {}).items():
                set_dotted(data, dotted, value)
    return CampaignConfig.model_validate(data, context=STORED_CONFIG)  # renamed keys translated


def with_overrides(config: CampaignConfig, overrides: dict[str, Any]) -> CampaignConfig:
    """`config` with dotted-key overrides applied and validated (ValidationError on bad values)."""
    data = config.model_dump(mode="json")
    for dotted, value in overrides.items():
        set_dotted(data, dotted, value)
    return CampaignConfig.model_validate(data)


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `data["a"]["b"] = value` for the key "a.b" of a config dumped to JSON form."""
    *parents, leaf = dotted.split(".")
    for key in parents:
        data = data[key]
    data[leaf] = value
