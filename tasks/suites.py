"""The tasks a candidate of a kind is scored on at a tier, whatever family they belong to: the proxy
tasks (tasks/proxy.py), the preference task (tasks/preference/task.py) or the scaling task
(tasks/scaling/task.py). Prompts, listings and displays ask here; running them is each family's own
evaluation."""

from __future__ import annotations

from .kinds import kind_spec
from .preference.task import PreferenceTask, preference_task
from .proxy import ProxyTask, tasks_for
from .scaling.task import ScalingTask, scaling_task


def suite(tier: int, kind: str) -> list[ProxyTask] | list[PreferenceTask] | list[ScalingTask]:
    evaluation = kind_spec(kind).evaluation
    if evaluation == "preference":
        return [preference_task(tier)]
    if evaluation == "scaling":
        return [scaling_task(tier)]
    return tasks_for(tier, kind)
