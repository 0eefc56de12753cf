"""What a requirements file, a ``uv.lock`` or a PEP 751 ``pylock.toml`` pins: each package from
an index with its exact version, and the environment marker that says where it is needed.

A requirements file's ``-r``/``--requirement`` includes are read too (relative to the file that
names them); lines that pin nothing exactly (``requests>=2``, a URL, an editable) are returned
apart, as what cannot be measured. Packages a lock takes from a directory, a VCS or a URL are not
an index's to serve, and left out.
"""

from __future__ import annotations

import dataclasses
import shlex
import tomllib
from pathlib import Path

from packaging.markers import InvalidMarker, Marker
from packaging.pylock import Pylock, PylockUnsupportedVersionError, PylockValidationError
from packaging.utils import NormalizedName, canonicalize_name

from factory.lockfiles import requirements
from factory.lockfiles.ours import LockError
from factory.lockfiles.rewrite import kind_of

#: Includes followed from one requirements file, at most (a loop of includes ends here).
MAX_INCLUDES = 100


@dataclasses.dataclass(frozen=True)
class Locked:
    """One exact pin."""

    name: NormalizedName
    version: str
    marker: Marker | None  # None: needed everywhere
    where: str  # file:line, or file and package, for messages


@dataclasses.dataclass(frozen=True)
class Pins:
    """What one file pins."""

    path: Path
    kind: str  # "requirements", "uv.lock" or "pylock.toml"
    pins: tuple[Locked, ...]
    unpinned: tuple[str, ...]  # requirement lines that pin no exact version, as written


def read(path: Path) -> Pins:
    """The pins of ``path``; :class:`LockError` when it cannot be read as its kind."""
    kind = kind_of(path)
    if kind == "uv.lock":
        return Pins(path, kind, _uv_lock(path), ())
    if kind == "pylock.toml":
        return Pins(path, kind, _pylock(path), ())
    pins: list[Locked] = []
    unpinned: list[str] = []
    _requirements(path, pins, unpinned, set())
    return Pins(path, kind, _unique(pins), tuple(unpinned))


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"{path}: cannot read: {exc}") from None


def _toml(path: Path) -> dict:
    try:
        return tomllib.loads(_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"{path}: not a TOML file: {exc}") from None


def _uv_lock(path: Path) -> tuple[Locked, ...]:
    packages = _toml(path).get("package", [])
    if not isinstance(packages, list):
        raise LockError(f"{path}: `package` is not an array of tables: is this a uv.lock?")
    found = []
    for package in packages:
        if not isinstance(package, dict) or "registry" not in package.get("source", {}):
            continue  # the project itself, a path, a git or a URL source
        if "name" not in package or "version" not in package:
            raise LockError(f"{path}: a registry package without a name or a version: is this a uv.lock?")
        name = canonicalize_name(str(package["name"]))
        found.append(Locked(name, str(package["version"]), None, f"{path.name}: {name}"))
    return _unique(found)


def _pylock(path: Path) -> tuple[Locked, ...]:
    try:
        lock = Pylock.from_dict(_toml(path))
    except (PylockValidationError, PylockUnsupportedVersionError) as exc:
        raise LockError(f"{path}: not a valid PEP 751 lock file: {exc}") from None
    found = []
    for package in lock.packages:
        if package.version is None or not (package.wheels or package.sdist):
            continue  # a directory, a VCS or an archive: not from an index
        name = canonicalize_name(package.name)
        found.append(Locked(name, str(package.version), package.marker, f"{path.name}: {name}"))
    return _unique(found)


def _requirements(path: Path, pins: list[Locked], unpinned: list[str], seen: set[Path]) -> None:
    resolved = path.resolve()
    if resolved in seen:
        return
    if len(seen) >= MAX_INCLUDES:
        raise LockError(f"{path}: more than {MAX_INCLUDES} requirements files included: a loop?")
    seen.add(resolved)
    number = 1
    for group in requirements.logical_lines(_text(path)):
        where, number = f"{path.name}:{number}", number + len(group)
        logical = requirements.joined(group).strip()
        include = _include(logical)
        if include is not None:
            _requirements(path.parent / include, pins, unpinned, seen)
            continue
        if not logical or logical.startswith("#") or logical.startswith("-"):
            continue  # comments, and options (an index URL, a constraints file, an editable)
        found = requirements.requirement(logical)
        if found is None:
            unpinned.append(logical.split(" #", 1)[0].strip())
            continue
        version = requirements.exact_version(found)
        if version is None:
            unpinned.append(str(found))
            continue
        pins.append(Locked(canonicalize_name(found.name), version, found.marker, where))


def _include(logical: str) -> str | None:
    """The file a ``-r FILE`` / ``--requirement FILE`` line includes."""
    try:
        words = shlex.split(logical.split(" #", 1)[0])
    except ValueError:
        return None
    if not words:
        return None
    first = words[0]
    if first in ("-r", "--requirement") and len(words) > 1:
        return words[1]
    for prefix in ("--requirement=", "-r"):
        if first.startswith(prefix) and len(first) > len(prefix):
            return first[len(prefix):]
    return None


def _unique(pins: list[Locked]) -> tuple[Locked, ...]:
    """Each pin once (uv.lock may lock a package at two versions, for different markers: both
    stay); markers of one pin named twice are or-ed."""
    merged: dict[tuple[str, str], Locked] = {}
    for pin in pins:
        known = merged.get((pin.name, pin.version))
        if known is None:
            merged[(pin.name, pin.version)] = pin
        elif known.marker is not None:
            marker = None if pin.marker is None else _either(known.marker, pin.marker)
            merged[(pin.name, pin.version)] = dataclasses.replace(known, marker=marker)
    return tuple(merged.values())


def _either(a: Marker, b: Marker) -> Marker | None:
    try:
        return Marker(f"({a}) or ({b})")
    except InvalidMarker:
        return None
