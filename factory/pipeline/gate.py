"""Gating, pure functions: what may be published once wheels are built, checked, tested and signed.

The rules, each decided here and nowhere else:

- a target whose build failed, or whose wheel failed the host's policy check, fails;
- a pure wheel is smoke-tested once, on the first target's architecture; any other wheel on each
  target it serves;
- a wheel that failed its test anywhere is published nowhere (an abi3 wheel failing on 3.13 would
  otherwise reach 3.13 users through the 3.11 target that passed);
- nothing unsigned is published: when signing fails, every target the wheels serve fails with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from factory.failures import BuildFailure, FailureClass
from factory.pipeline.build import BuildKind, TargetResult
from factory.pipeline.record import BuildStatus, TargetOutcome, TargetStatus
from factory.pipeline.repair import CheckedWheel
from factory.targets import Target


def failed(target: Target, failure: BuildFailure) -> TargetOutcome:
    return TargetOutcome(target, TargetStatus.FAILED, failure_class=failure.failure_class, reason=failure.reason,
                         log_tail=failure.log_tail)


@dataclasses.dataclass(frozen=True)
class Checked:
    """The targets whose wheel passed the host's check, and those that failed before."""

    passing: tuple[tuple[Target, CheckedWheel], ...]
    failed: tuple[TargetOutcome, ...]


def after_repair(results: Sequence[TargetResult], checks: Mapping[Path, CheckedWheel | BuildFailure]) -> Checked:
    """Join each target's build result with its wheel's host check."""
    passing: list[tuple[Target, CheckedWheel]] = []
    failures: list[TargetOutcome] = []
    for result in results:
        check = checks.get(result.wheel) if result.wheel is not None else None
        if result.failure is not None:
            failures.append(failed(result.target, result.failure))
        elif check is None:
            failures.append(failed(result.target, BuildFailure(FailureClass.INTERNAL, "the build left no wheel")))
        elif isinstance(check, BuildFailure):
            failures.append(failed(result.target, check))
        else:
            passing.append((result.target, check))
    return Checked(tuple(passing), tuple(failures))


def smoke_tests(kind: BuildKind, checked: Checked) -> tuple[tuple[CheckedWheel, Target], ...]:
    """The (wheel, target) pairs to smoke-test: a pure wheel once, on the first target."""
    runs: list[tuple[CheckedWheel, Target]] = []
    for target, wheel in checked.passing:
        if kind is BuildKind.PURE and any(w.path == wheel.path for w, _ in runs):
            continue
        runs.append((wheel, target))
    return tuple(runs)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Each built target's outcome, and the wheels that may be published."""

    outcomes: tuple[TargetOutcome, ...]
    wheels: tuple[CheckedWheel, ...]


@dataclasses.dataclass(frozen=True)
class Tested:
    """How a wheel's tests went on one target: failed, or passed with some checks not run."""

    failure: BuildFailure | None = None
    skipped: tuple[str, ...] = ()  # each check not run, and why


def after_tests(checked: Checked, tested: Mapping[tuple[Path, Target], Tested]) -> Verdict:
    """Fail every target of a wheel that failed a test on any target; the rest are built, with
    the checks that were not run on them."""
    failing = {path: t.failure for (path, _), t in tested.items() if t.failure is not None}
    outcomes = list(checked.failed)
    wheels: list[CheckedWheel] = []
    for target, wheel in checked.passing:
        if wheel.path in failing:
            outcomes.append(failed(target, failing[wheel.path]))
            continue
        # A pure wheel is tested on one target only: what it skipped there, it skipped everywhere.
        skipped = tested.get((wheel.path, target)) or next(
            (t for (path, _), t in tested.items() if path == wheel.path), Tested())
        outcomes.append(TargetOutcome(target, TargetStatus.BUILT, wheel=wheel.filename,
                                      skipped_checks=skipped.skipped))
        if wheel not in wheels:
            wheels.append(wheel)
    return Verdict(tuple(outcomes), tuple(wheels))


def after_signing(verdict: Verdict, failure: BuildFailure | None) -> Verdict:
    """Nothing unsigned is published: a signing failure fails every target of the signed wheels."""
    if failure is None:
        return verdict
    signed = {w.filename for w in verdict.wheels}
    outcomes = tuple(failed(o.target, failure) if o.status is TargetStatus.BUILT and o.wheel in signed else o
                     for o in verdict.outcomes)
    return Verdict(outcomes, ())


@dataclasses.dataclass(frozen=True)
class Summary:
    """A build's overall status and, when something failed, its first failure."""

    status: BuildStatus
    failure_class: FailureClass | None = None
    reason: str | None = None
    log_tail: str = ""


def summarize(outcomes: Sequence[TargetOutcome], shared: BuildFailure | None) -> Summary:
    """``shared`` is the failure of a stage every target shared (then the build failed)."""
    ordered = sorted(outcomes, key=lambda o: o.target)
    built = [o for o in ordered if o.status is TargetStatus.BUILT]
    failures = [o for o in ordered if o.status is TargetStatus.FAILED]
    if shared is not None:
        return Summary(BuildStatus.FAILED, shared.failure_class, shared.reason, shared.log_tail)
    if not failures:
        return Summary(BuildStatus.BUILT)
    first = failures[0]
    status = BuildStatus.PARTIAL if built else BuildStatus.FAILED
    return Summary(status, first.failure_class, f"{first.target}: {first.reason}", first.log_tail)
