"""Build targets: (architecture, CPython version) pairs, and which wheel serves which target."""

from __future__ import annotations

import dataclasses
import functools

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

#: The oldest glibc factory's wheels may need is any; the newest is 2.28.
MANYLINUX_MINORS = range(28, 4, -1)


@dataclasses.dataclass(frozen=True, order=True)
class Target:
    """One architecture and one CPython: what a platform wheel is built for."""

    arch: str  # x86_64, aarch64
    python: str  # 3.11

    @property
    def cp(self) -> str:
        """``cp311``: the interpreter tag, and cibuildwheel's build selector prefix."""
        return "cp" + self.python.replace(".", "")

    def __str__(self) -> str:
        return f"{self.cp}-{self.arch}"

    @property
    def tags(self) -> frozenset[Tag]:
        return _tags(self.arch, self.python)


@functools.lru_cache(maxsize=None)
def _tags(arch: str, python: str) -> frozenset[Tag]:
    platforms = [f"manylinux_2_{m}_{arch}" for m in MANYLINUX_MINORS]
    platforms += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    version = tuple(int(p) for p in python.split("."))
    return frozenset(cpython_tags(version, platforms=platforms)) | frozenset(
        compatible_tags(version, f"cp{python.replace('.', '')}", platforms=platforms)
    )


def plan(archs: tuple[str, ...], pythons: tuple[str, ...]) -> list[Target]:
    """Every (arch, python) pair, in a stable order."""
    return [Target(a, p) for a in archs for p in pythons]


def serves(filename: str, target: Target) -> bool:
    """Whether the wheel ``filename`` installs on ``target`` (pure, abi3, or exactly its tags)."""
    return not target.tags.isdisjoint(parse_wheel_filename(filename)[3])


def is_pure(filename: str) -> bool:
    return all(t.platform == "any" for t in parse_wheel_filename(filename)[3])
