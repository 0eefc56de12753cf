"""What to build: a project, and a version or "the newest"."""

from __future__ import annotations

import dataclasses

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from factory.failures import ConfigError


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    """One project at one version; ``version=None`` means the newest release with an sdist."""

    project: NormalizedName
    version: Version | None = None

    def __str__(self) -> str:
        return self.project if self.version is None else f"{self.project}=={self.version}"


def parse_request(text: str) -> BuildRequest:
    """Parse ``NAME`` or ``NAME==VERSION``; the name is normalized (PEP 503)."""
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise ConfigError(f"{text!r}: expected NAME or NAME==VERSION ({exc})") from None
    if req.extras or req.url or req.marker:
        raise ConfigError(f"{text!r}: expected NAME or NAME==VERSION, without extras, URL or marker")
    specs = list(req.specifier)
    if not specs:
        return BuildRequest(canonicalize_name(req.name))
    if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
        raise ConfigError(f"{text!r}: give one exact version, as in {req.name}==1.2.3")
    try:
        version = Version(specs[0].version)
    except InvalidVersion:
        raise ConfigError(f"{text!r}: {specs[0].version!r} is not a valid version") from None
    return BuildRequest(canonicalize_name(req.name), version)
