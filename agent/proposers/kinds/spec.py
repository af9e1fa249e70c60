"""What the proposers know about a kind: the agent's half of a kind plug-in.

The trusted half (contract, tier 0, training, metric, reference, export) is tasks/kinds; this half
holds what only proposers use: the mutation grammar's terms and crossovers, the type analysis of the
required functions, and the baselines an LLM prompt shows. The prompt templates of a kind are
agent/prompts/<kind>_system.txt and <kind>_user.txt.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from optforge.tasks.kinds import kind_spec

if TYPE_CHECKING:  # grammar looks kinds up here: importing it at run time would make a circle
    from optforge.agent.proposers.grammar import Term

# (parent a, parent b, kind, rng, b's name) -> (description, tag) or None; edits a in place.
Crossover = Callable[[ast.Module, ast.Module, str, random.Random, str], "tuple[str, str] | None"]


@dataclass(frozen=True)
class ProposalKind:
    name: str
    # syntax.py types of each required function's parameters, by position (names differ).
    param_types: Mapping[str, tuple[str, ...]]
    slots: tuple[str, ...]  # grammar placeholders of the main function's parameters, by position
    terms: tuple[Term, ...]  # what the mutation proposer may insert into the main function
    crossovers: tuple[Crossover, ...]  # how two parents combine
    # The main function returns (value, new_state): terms rewrite the value, the first element.
    returns_state: bool
    # How blend_functions combines two programs of the kind (loss: "sum"; schedule: ...).
    blends: tuple[str, ...] = ()
    # The keys of the dict the main function returns, when it returns one (a scaling rule's "lr"
    # and "weight_decay"): terms rewrite them one at a time, blends combine them key by key.
    entries: tuple[str, ...] = ()
    prune: Callable[[ast.Module], None] | None = None  # kind-specific part of `simplify`
    examples: tuple[str, ...] = ()  # baselines an LLM prompt shows as worked examples

    @property
    def main_function(self) -> str:
        return kind_spec(self.name).main_function
