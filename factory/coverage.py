"""``factory coverage FILE``: of the pins of a requirements file, a ``uv.lock`` or a
``pylock.toml``, which the index serves, for which targets, and what the queue is doing about
the rest: the way a security team measures how much of an application the hardened index covers.

Each pin is judged per target (an architecture and a CPython):

- ``served``: the index has a wheel of that version that installs there;
- ``not-needed``: the pin's environment marker excludes the target;
- ``excluded``: the release's Requires-Python excludes the target's CPython;
- ``queued``, ``building``, ``waiting``: a build request for it is in the queue;
- ``failed``, ``refused``: its build failed (the reason says why; ``factory requeue`` after a fix);
- ``lacking``: none of these: nobody asked yet (``--queue`` asks).

:func:`judge` and :func:`measure` are pure; :func:`of_file` reads the index and the queue.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from factory.config import Config
from factory.index.manifest import FileEntry, Manifest
from factory.lockfiles.pins import Locked, Pins, read
from factory.queue.ledger import Demand, Item, Ledger, State
from factory.targets import Target, every_target, serves


class Cell(enum.StrEnum):
    """What one pin is on one target."""

    SERVED = "served"
    NOT_NEEDED = "not-needed"
    EXCLUDED = "excluded"
    QUEUED = "queued"
    BUILDING = "building"
    WAITING = "waiting"
    FAILED = "failed"
    REFUSED = "refused"
    LACKING = "lacking"

    @property
    def covered(self) -> bool:
        """Nothing is missing: served, or not wanted there."""
        return self in (Cell.SERVED, Cell.NOT_NEEDED, Cell.EXCLUDED)

    @property
    def in_queue(self) -> bool:
        return self in (Cell.QUEUED, Cell.BUILDING, Cell.WAITING)


#: A pin's overall standing: its worst cell, in this order.
WORST_FIRST = (Cell.FAILED, Cell.REFUSED, Cell.LACKING, Cell.WAITING, Cell.QUEUED, Cell.BUILDING, Cell.SERVED,
               Cell.EXCLUDED, Cell.NOT_NEEDED)


@dataclasses.dataclass(frozen=True)
class PinCoverage:
    name: str
    version: str
    cells: Mapping[str, Cell]  # target -> cell
    detail: str  # why, for failed and refused: the failure class and reason

    @property
    def status(self) -> Cell:
        present = set(self.cells.values())
        return next((c for c in WORST_FIRST if c in present), Cell.NOT_NEEDED)

    @property
    def served_everywhere(self) -> bool:
        return all(c.covered for c in self.cells.values())

    @property
    def lacking(self) -> tuple[str, ...]:
        """The targets nothing covers yet and nothing in the queue will: what ``--queue`` asks for."""
        return tuple(t for t, c in self.cells.items() if c is Cell.LACKING)

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "status": str(self.status),
                "targets": {t: str(c) for t, c in self.cells.items()}, "detail": self.detail}


@dataclasses.dataclass(frozen=True)
class Coverage:
    file: str
    kind: str
    targets: tuple[str, ...]
    pins: tuple[PinCoverage, ...]
    unpinned: tuple[str, ...]
    queued: int = 0  # build requests --queue added

    def count(self, status: Cell) -> int:
        return sum(p.status is status for p in self.pins)

    @property
    def served(self) -> int:
        """Pins served on every target that needs them."""
        return sum(p.served_everywhere for p in self.pins)

    @property
    def summary(self) -> dict[str, int | float]:
        cells = [c for p in self.pins for c in p.cells.values() if c not in (Cell.NOT_NEEDED, Cell.EXCLUDED)]
        return {"pins": len(self.pins), "served": self.served, "partly": sum(
                    not p.served_everywhere and Cell.SERVED in p.cells.values() for p in self.pins),
                "in-queue": sum(any(c.in_queue for c in p.cells.values()) for p in self.pins),
                "failed": self.count(Cell.FAILED) + self.count(Cell.REFUSED),
                "lacking": sum(bool(p.lacking) for p in self.pins),
                "unpinned": len(self.unpinned),
                "target-coverage": round(sum(c is Cell.SERVED for c in cells) / len(cells), 4) if cells else 1.0,
                "queued-now": self.queued}

    @property
    def headline(self) -> str:
        s = self.summary
        text = (f"{self.file}: {s['served']} of {s['pins']} pins served on every target "
                f"({100 * s['target-coverage']:.0f}% of pin-target pairs); {s['partly']} partly, "
                f"{s['in-queue']} in the queue, {s['failed']} failed, {s['lacking']} lacking a target nobody asked for "
                f"(--queue asks)")
        if self.unpinned:
            text += f"; {len(self.unpinned)} requirements pin no exact version (not measured)"
        if self.queued:
            text += f"; {self.queued} build requests queued now"
        return text

    def to_dict(self) -> dict:
        return {"file": self.file, "kind": self.kind, "targets": list(self.targets),
                "pins": [p.to_dict() for p in self.pins], "unpinned": list(self.unpinned), "summary": self.summary}


def _same(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def judge(pin: Locked, target: Target, files: Sequence[FileEntry], item: Item | None) -> Cell:
    """What ``pin`` is on ``target``, given the index's files of its project and version and the
    queue's request for it (or None)."""
    if pin.marker is not None and not pin.marker.evaluate(target.environment):
        return Cell.NOT_NEEDED
    if any(f.filename.endswith(".whl") and serves(f.filename, target) for f in files):
        return Cell.SERVED
    if files and all(_excludes(f.requires_python, target) for f in files):
        return Cell.EXCLUDED
    if item is not None and item.state is not State.BUILT:
        return Cell(str(item.state))
    return Cell.LACKING


def _excludes(requires_python: str | None, target: Target) -> bool:
    if not requires_python:
        return False
    try:
        return not SpecifierSet(requires_python).contains(f"{target.python}.0", prereleases=True)
    except InvalidSpecifier:
        return False


def measure(pins: Pins, targets: Sequence[Target], files_of: Callable[[str, str], list[FileEntry]],
            item_of: Callable[[str, str], Item | None]) -> Coverage:
    """Every pin of ``pins`` judged on every target."""
    judged = []
    for pin in pins.pins:
        files, item = files_of(pin.name, pin.version), item_of(pin.name, pin.version)
        cells = {str(t): judge(pin, t, files, item) for t in targets}
        detail = ""
        if item is not None and item.state in (State.FAILED, State.REFUSED):
            detail = f"{item.failure_class}: {item.reason}"
        elif item is not None and item.state is State.WAITING:
            detail = item.reason or ""
        judged.append(PinCoverage(pin.name, pin.version, cells, detail))
    return Coverage(str(pins.path), pins.kind, tuple(str(t) for t in targets), tuple(judged), pins.unpinned)


def demands(coverage: Coverage, now: float) -> list[Demand]:
    """Build requests for what nobody asked for yet: each pin lacking a target, with the
    targets it lacks (as no-compatible-file misses count them)."""
    return [Demand(p.name, p.version, hits=1, clients=frozenset(), first_seen=now, last_seen=now,
                   targets={t: 1 for t in p.lacking})
            for p in coverage.pins if p.lacking]


def of_file(path: Path, config: Config, targets: Sequence[Target] | None = None, queue: bool = False) -> Coverage:
    """Coverage of the file at ``path`` against ``config``'s index and queue; with ``queue``, what
    nobody asked for yet becomes build requests (their origin: the file's name)."""
    pins = read(path)
    targets = list(targets) if targets is not None else every_target(config.archs, config.pythons)
    manifest = Manifest.existing(config.index_dir)
    by_project: dict[str, list[FileEntry]] = {}
    if manifest is not None:
        with manifest:
            for name in {p.name for p in pins.pins}:
                by_project[name] = manifest.files(name)

    def files_of(name: str, version: str) -> list[FileEntry]:
        return [f for f in by_project.get(name, []) if _same(f.version, version)]

    with Ledger.open(config) as ledger:
        items: dict[str, list[Item]] = {}
        for name in {p.name for p in pins.pins}:
            items[name] = ledger.requests_of(name)

        def item_of(name: str, version: str) -> Item | None:
            return next((i for i in items.get(name, []) if _same(i.version, version)), None)

        found = measure(pins, targets, files_of, item_of)
        if not queue:
            return found
        wanted = demands(found, time.time())
        if wanted:
            ledger.add(wanted, origin=path.name, buildable=[str(t) for t in targets])
            for name in {d.project for d in wanted}:
                items[name] = ledger.requests_of(name)
        return dataclasses.replace(measure(pins, targets, files_of, item_of), queued=len(wanted))
