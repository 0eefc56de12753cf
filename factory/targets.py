"""What factory builds for: architectures, CPythons, and the (architecture, CPython) targets.

This is the one table of architectures and their platforms: Debian, the compiler, QEMU, the
wheel tags and the manylinux policy all read it from here.
"""

from __future__ import annotations

import dataclasses
import functools
import re

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

#: The newest glibc a published wheel may need: manylinux_2_28.
MAX_GLIBC = (2, 28)
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


@dataclasses.dataclass(frozen=True)
class CPython:
    """A CPython the builder images can hold."""

    version: str
    suite: str  # the Debian suite that carries it
    released: str  # its first release: build tools older than that mostly cannot run on it


CPYTHONS = {c.version: c for c in (CPython("3.11", "bookworm", "2022-10-24T00:00:00Z"),
                                   CPython("3.13", "trixie", "2024-10-07T00:00:00Z"),
                                   CPython("3.14", "sid", "2025-10-07T00:00:00Z"))}


@dataclasses.dataclass(frozen=True)
class Arch:
    """How one architecture is named by wheel tags, Debian, OCI, the compiler and QEMU."""

    name: str  # as in wheel tags: x86_64, aarch64
    debian: str  # Debian's and OCI's name: amd64, arm64
    triplet: str  # the GNU triplet: x86_64-linux-gnu
    qemu_cpu: str  # the CPU qemu-user presents when this architecture is emulated

    @property
    def zig_target(self) -> str:
        """zig's target: this triplet, glibc 2.28."""
        return f"{self.triplet}.{MAX_GLIBC[0]}.{MAX_GLIBC[1]}"

    @property
    def policy(self) -> str:
        """The auditwheel policy wheels of this architecture are repaired to."""
        return f"manylinux_{MAX_GLIBC[0]}_{MAX_GLIBC[1]}_{self.name}"

    @property
    def uv_platform(self) -> str:
        """uv's ``--python-platform`` for a machine of this architecture within the policy."""
        return f"{self.name}-manylinux_{MAX_GLIBC[0]}_{MAX_GLIBC[1]}"

    @property
    def platforms(self) -> tuple[str, ...]:
        """Every platform tag a wheel within the policy may carry, newest first."""
        modern = tuple(f"manylinux_2_{minor}_{self.name}" for minor in range(MAX_GLIBC[1], 4, -1))
        return modern + tuple(f"{legacy}_{self.name}" for legacy in _LEGACY_MANYLINUX)


ARCHES: dict[str, Arch] = {
    "x86_64": Arch("x86_64", "amd64", "x86_64-linux-gnu", "max"),
    # Debian's arm64 binaries use pointer authentication, which QEMU emulates slowly: off.
    "aarch64": Arch("aarch64", "arm64", "aarch64-linux-gnu", "max,pauth=off"),
}
ARCHITECTURES = tuple(ARCHES)


def glibc_of(platform: str) -> tuple[int, int] | None:
    """The glibc a manylinux platform tag requires: manylinux_2_17_x86_64 and manylinux2014_x86_64 -> (2, 17)."""
    if m := re.match(r"manylinux_(\d+)_(\d+)_", platform):
        return int(m.group(1)), int(m.group(2))
    return _LEGACY_MANYLINUX.get(platform.split("_", 1)[0])


def arch_of(platform: str) -> str:
    """The architecture of a manylinux platform tag: manylinux_2_17_x86_64 -> x86_64."""
    if platform.startswith("manylinux_"):
        return platform.split("_", 3)[3]
    return platform.split("_", 1)[1]


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

    @classmethod
    def parse(cls, text: str) -> Target:
        """The inverse of ``str``: ``cp311-x86_64`` -> Target("x86_64", "3.11")."""
        cp, _, arch = text.partition("-")
        return cls(arch, f"{cp[2]}.{cp[3:]}")

    @property
    def tags(self) -> frozenset[Tag]:
        return _tags(self.arch, self.python)

    @property
    def environment(self) -> dict[str, str]:
        """The PEP 508 marker environment of this target's CPython on Linux."""
        return {"implementation_name": "cpython", "implementation_version": f"{self.python}.0",
                "os_name": "posix", "platform_machine": self.arch, "platform_python_implementation": "CPython",
                "platform_system": "Linux", "python_full_version": f"{self.python}.0",
                "python_version": self.python, "sys_platform": "linux"}


@functools.lru_cache(maxsize=None)
def _tags(arch: str, python: str) -> frozenset[Tag]:
    platforms = list(ARCHES[arch].platforms)
    version = tuple(int(p) for p in python.split("."))
    return frozenset(cpython_tags(version, platforms=platforms)) | frozenset(
        compatible_tags(version, f"cp{python.replace('.', '')}", platforms=platforms)
    )


def every_target(archs: tuple[str, ...], pythons: tuple[str, ...]) -> list[Target]:
    """Every (arch, python) pair, in a stable order."""
    return [Target(a, p) for a in archs for p in pythons]


def serves(filename: str, target: Target) -> bool:
    """Whether the wheel ``filename`` installs on ``target`` (pure, abi3, or exactly its tags)."""
    return not target.tags.isdisjoint(parse_wheel_filename(filename)[3])


def is_pure(filename: str) -> bool:
    return all(t.platform == "any" for t in parse_wheel_filename(filename)[3])
