"""The tasks a candidate of a kind is scored on at a tier, whatever family they belong to: the proxy
tasks (tasks/proxy.py) or the preference task (tasks/preference/task.py). Prompts, listings and
displays ask here; running them is each family's own evaluation."""

from __future__ import annotations

from .kinds import kind_spec
from .preference.task import PreferenceTask, preference_task
from .proxy import ProxyTask, tasks_for


def suite(tier: int, kind: str) -> list[ProxyTask] | list[PreferenceTask]:
    if kind_spec(kind).evaluation == "preference":
        return [preference_task(tier)]
    return tasks_for(tier, kind)
