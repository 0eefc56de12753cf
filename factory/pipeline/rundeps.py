"""A wheel's runtime dependencies, offered to the containers that test it (the import gate, a
recipe's smoke test), which have no network.

They are resolved on the host for the wheel's own target (binaries only, as of the release's day,
as build requirements are: an old release is tested with the dependencies of its day), taken from
factory's index where it has the pinned wheel, else the upstream's (downloaded and checked
against its sha256 on the host), and laid out like a build environment, mounted read-only. A
requirement that names a URL is never fetched. When no set of wheels satisfies them, nothing is
offered and the reason is kept: the tests then say which import needed what could not be offered.
"""

from __future__ import annotations

import dataclasses
import email.parser
import zipfile
from collections.abc import Sequence
from pathlib import Path

import httpx
from packaging.requirements import InvalidRequirement, Requirement

from factory.config import Config
from factory.failures import BuildFailure
from factory.pipeline.buildenv import BuildEnvironment
from factory.pipeline.record import Origin
from factory.pipeline.requirements import Resolver, constraints, cutoff, inputs, upstream_binaries
from factory.targets import Target


@dataclasses.dataclass(frozen=True)
class RuntimeDependencies:
    """What a wheel needs at run time on one target, and where the test container finds it."""

    requirements: tuple[str, ...]  # the wheel's Requires-Dist that apply on the target (no extra)
    env: BuildEnvironment | None  # the offered wheels; None when there is nothing to offer
    unavailable: str = ""  # why the requirements could not be offered, if they could not


def requires_dist(wheel: Path) -> tuple[str, ...]:
    """The ``Requires-Dist`` of ``wheel``'s METADATA, as written."""
    with zipfile.ZipFile(wheel) as zf:
        metadata = next(n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        headers = email.parser.BytesHeaderParser().parsebytes(zf.read(metadata))
    return tuple(str(v) for v in headers.get_all("Requires-Dist") or ())


def applicable(requirements: Sequence[str], target: Target) -> tuple[list[str], list[str]]:
    """Of ``requirements``, those that apply on ``target`` with no extra requested; and, apart,
    those that would need a URL fetched or do not parse (never fetched, never installed)."""
    wanted, refused = [], []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            refused.append(text)
            continue
        if req.marker is not None and not req.marker.evaluate({**target.environment, "extra": ""}):
            continue
        if req.url:
            refused.append(text)
            continue
        wanted.append(str(req))
    return wanted, refused


def offer(wheel: Path, target: Target, uploaded: str | None, config: Config, client: httpx.Client,
          dest: Path) -> RuntimeDependencies:
    """Lay out under ``dest`` the wheels that ``wheel`` needs at run time on ``target``."""
    wanted, refused = applicable(requires_dist(wheel), target)
    if not wanted and not refused:
        return RuntimeDependencies((), None)
    if refused:
        return RuntimeDependencies(tuple(wanted + refused), None,
                                   f"a requirement names a URL or does not parse ({', '.join(refused)}): nothing is "
                                   "fetched from a URL a wheel names")
    resolver = Resolver(config.upstream, config.cache_dir, config.http_timeout)
    try:
        pins = resolver.resolve(wanted, cutoff(uploaded, target.python), target.python, arch=target.arch)
        ours = [i for i in inputs(pins, config.index_dir, config.index_url, [target]) if i.origin is Origin.FACTORY]
        have = {(i.name, i.version) for i in ours}
        theirs = upstream_binaries([p for p in pins if (p.name, str(p.version)) not in have], config, client,
                                   [target], "a runtime dependency of the wheel under test")
    except BuildFailure as failure:
        return RuntimeDependencies(tuple(wanted), None, failure.reason)
    env = BuildEnvironment.write(dest, config.index_dir, constraints(pins), ours, [path for path, _ in theirs])
    return RuntimeDependencies(tuple(wanted), env)
