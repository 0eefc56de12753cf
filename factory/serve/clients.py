"""What an installer says about itself in its User-Agent, and whether a project's files serve it.

pip's and uv's User-Agent is ``name/version {json}``: the installer, the Python implementation
and version, the libc and the CPU. From that a server knows which wheel tags the client accepts,
and so when a page it serves has no file for it: a miss factory can learn from (which targets
its users need), where the client itself only says "no matching distribution".
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename


def client_facts(user_agent: str) -> dict[str, Any]:
    """What pip's and uv's User-Agent says: ``name/version {json}`` with the installer, the
    Python implementation, the libc and the CPU."""
    data = _data(user_agent)
    name = user_agent.partition(" ")[0]
    facts: dict[str, Any] = {}
    installer = data.get("installer") if isinstance(data.get("installer"), dict) else None
    if installer:
        facts["installer"] = f"{installer.get('name')} {installer.get('version')}"
    elif "/" in name:
        facts["installer"] = name.replace("/", " ", 1)
    implementation = data.get("implementation")
    if isinstance(implementation, dict):
        facts["python"] = f"{implementation.get('name')} {implementation.get('version')}"
    elif isinstance(data.get("python"), str):
        facts["python"] = data["python"]
    distro = data.get("distro") if isinstance(data.get("distro"), dict) else {}
    libc = distro.get("libc") if isinstance(distro.get("libc"), dict) else None
    if libc:
        facts["libc"] = f"{libc.get('lib')} {libc.get('version')}"
    if isinstance(data.get("cpu"), str):
        facts["cpu"] = data["cpu"]
    return facts


def _data(user_agent: str) -> dict[str, Any]:
    rest = user_agent.partition(" ")[2]
    try:
        data = json.loads(rest) if rest.startswith("{") else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclasses.dataclass(frozen=True)
class Client:
    """A CPython on glibc Linux, as its installer described it."""

    python: tuple[int, int]  # (3, 12)
    full_python: str  # 3.12.1
    glibc: tuple[int, int]  # (2, 36)
    cpu: str  # x86_64, aarch64

    @property
    def target(self) -> str:
        """As factory names targets: ``cp312-x86_64``."""
        return f"cp{self.python[0]}{self.python[1]}-{self.cpu}"

    @property
    def tags(self) -> frozenset[Tag]:
        return _tags(self.python, self.glibc, self.cpu)

    @property
    def best_tag(self) -> str:
        """The most specific tag the client accepts: what it needed and did not find."""
        return str(next(iter(cpython_tags(self.python, platforms=[_platforms(self.glibc, self.cpu)[0]]))))


def parse(user_agent: str) -> Client | None:
    """The client, if its User-Agent describes a CPython on glibc Linux (what factory builds for)."""
    data = _data(user_agent)
    implementation = data.get("implementation") if isinstance(data.get("implementation"), dict) else {}
    distro = data.get("distro") if isinstance(data.get("distro"), dict) else {}
    libc = distro.get("libc") if isinstance(distro.get("libc"), dict) else {}
    system = data.get("system") if isinstance(data.get("system"), dict) else {}
    version = implementation.get("version") or data.get("python")
    if implementation.get("name") != "CPython" or libc.get("lib") != "glibc" or system.get("name") != "Linux":
        return None
    cpu = data.get("cpu")
    try:
        python = tuple(int(p) for p in str(version).split(".")[:2])
        glibc = tuple(int(p) for p in str(libc.get("version")).split(".")[:2])
    except ValueError:
        return None
    if len(python) != 2 or len(glibc) != 2 or not isinstance(cpu, str) or not cpu.isidentifier():
        return None
    return Client(python, str(version), glibc, cpu)  # type: ignore[arg-type]


def _platforms(glibc: tuple[int, int], cpu: str) -> list[str]:
    minors = range(glibc[1], 4, -1) if glibc[0] == 2 else range(0)
    legacy = [f"{tag}_{cpu}" for tag, minor in (("manylinux2014", 17), ("manylinux2010", 12), ("manylinux1", 5))
              if glibc >= (2, minor)]
    return [f"manylinux_2_{m}_{cpu}" for m in minors] + legacy + [f"linux_{cpu}"]


@functools.lru_cache(maxsize=256)
def _tags(python: tuple[int, int], glibc: tuple[int, int], cpu: str) -> frozenset[Tag]:
    platforms = _platforms(glibc, cpu)
    return frozenset(cpython_tags(python, platforms=platforms)) | frozenset(
        compatible_tags(python, f"cp{python[0]}{python[1]}", platforms=platforms))


def has_compatible(client: Client, filenames: Iterable[str], requires_python: dict[str, str | None]) -> bool:
    """Whether some wheel among ``filenames`` installs on ``client``, or the project does not
    support the client's Python anyway (then there is nothing to build for it)."""
    wheels = [f for f in filenames if f.endswith(".whl")]
    if not wheels:
        return True  # no wheel at all: an sdist-only release, not a target missing
    supported = False
    for filename in wheels:
        try:
            tags = parse_wheel_filename(filename)[3]
        except InvalidWheelFilename:
            continue
        specifier = requires_python.get(filename)
        try:
            if specifier and not SpecifierSet(specifier).contains(client.full_python, prereleases=True):
                continue
        except InvalidSpecifier:
            pass
        supported = True
        if not client.tags.isdisjoint(tags):
            return True
    return not supported
