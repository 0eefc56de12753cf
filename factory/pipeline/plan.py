"""Planning, a pure function: which targets a build must make, and which are settled before it
starts (skipped by the recipe, or served by a file the index already has)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from factory.pipeline.record import TargetOutcome, TargetStatus
from factory.recipes import Recipe
from factory.targets import Target, serves


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to build, and how the other targets ended without a build."""

    todo: tuple[Target, ...]
    settled: tuple[TargetOutcome, ...]


def plan(targets: Sequence[Target], recipe: Recipe, published: Sequence[str]) -> Plan:
    """Plan ``targets`` for a release whose index already holds the files ``published``."""
    todo: list[Target] = []
    settled: list[TargetOutcome] = []
    for target in targets:
        if skip := recipe.skipped(target.arch, target.python):
            settled.append(TargetOutcome(target, TargetStatus.SKIPPED, reason=skip.reason))
        elif served := next((f for f in published if f.endswith(".whl") and serves(f, target)), None):
            settled.append(TargetOutcome(target, TargetStatus.BUILT, wheel=served))
        else:
            todo.append(target)
    return Plan(tuple(todo), tuple(settled))
