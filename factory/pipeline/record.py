"""Build records: one JSON file per build, saying what happened and how long each stage took.

A record is written once, at the end of :func:`factory.pipeline.run.run`, from the stages'
results; its path is ``<records-dir>/<project>/<build id>.json``, with the whole build log
beside it (``.log``). Workers read it there, never from a build's output.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import secrets
from pathlib import Path
from typing import Any

from factory.failures import FailureClass
from factory.plumbing.files import write_text
from factory.targets import Target


class BuildStatus(enum.StrEnum):
    """How a whole build ended."""

    BUILT = "built"  # every target that was not skipped has a wheel in the index
    PARTIAL = "partial"  # some have
    FAILED = "failed"  # none has
    WAITING = "waiting"  # build dependencies must be built first (``waiting_for``); then build again


class TargetStatus(enum.StrEnum):
    """How one target ended."""

    BUILT = "built"  # a wheel in the index serves it (published now or before)
    FAILED = "failed"
    SKIPPED = "skipped"  # by the recipe


def new_build_id() -> str:
    """Sortable by time, unique across hosts: ``20261122T160300Z-3f9a1c``."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclasses.dataclass(frozen=True)
class TargetOutcome:
    """How one target ended, and why when it failed."""

    target: Target
    status: TargetStatus
    wheel: str | None = None  # the file that serves it
    failure_class: FailureClass | None = None
    reason: str | None = None
    log_tail: str = ""
    skipped_checks: tuple[str, ...] = ()  # checks of a built target not run, each saying why

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"target": str(self.target), "arch": self.target.arch, "python": self.target.python,
                                "status": str(self.status), "wheel": self.wheel,
                                "failure_class": str(self.failure_class) if self.failure_class else None,
                                "reason": self.reason}
        if self.log_tail:
            data["log_tail"] = self.log_tail
        if self.skipped_checks:
            data["skipped_checks"] = list(self.skipped_checks)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetOutcome:
        return cls(Target(data["arch"], data["python"]), TargetStatus(data["status"]), data.get("wheel"),
                   FailureClass(data["failure_class"]) if data.get("failure_class") else None,
                   data.get("reason"), data.get("log_tail", ""), tuple(data.get("skipped_checks", ())))


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    """The sdist (or the recipe's pinned source) a build used."""

    url: str
    filename: str
    sha256: str


@dataclasses.dataclass(frozen=True)
class RecipeInfo:
    path: str
    digest: str  # sha256 of the recipe file and the patches it uses


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    arch: str
    tag: str
    id: str


@dataclasses.dataclass(frozen=True)
class WheelInfo:
    """A wheel that passed every check (published now, unless it was already)."""

    filename: str
    sha256: str
    size: int
    policy: str  # auditwheel's overall tag, or "pure"


@dataclasses.dataclass(frozen=True)
class SignatureInfo:
    filename: str
    log_index: int
    identity: str
    issuer: str


class Origin(enum.StrEnum):
    """Where a build input came from."""

    FACTORY = "factory"  # rebuilt from source and signed by factory, from its own index
    UPSTREAM_BINARY = "upstream-binary"  # a recipe's seed: the upstream's wheel, hash-checked, not rebuilt


@dataclasses.dataclass(frozen=True)
class BuildInput:
    """A wheel installed into the build environment (a build requirement, or what it needs)."""

    name: str
    version: str
    filename: str
    sha256: str
    uri: str
    origin: Origin
    targets: tuple[str, ...]  # the targets whose build installed it

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "origin": str(self.origin), "targets": list(self.targets)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildInput:
        return cls(**{**data, "origin": Origin(data["origin"]), "targets": tuple(data["targets"])})


@dataclasses.dataclass(frozen=True)
class SystemPackage:
    """A Debian package installed into the build image, and why."""

    name: str
    version: str
    why: str  # "recipe", or what led to it


@dataclasses.dataclass(frozen=True)
class Requirements:
    """What the project asked for to build, and as of when it was resolved."""

    requested: tuple[str, ...]  # [build-system].requires and the backend's dynamic ones, as the recipe changed them
    pins: tuple[str, ...]  # the resolutions: name==version ; python_version == 'X.Y'
    cutoffs: dict[str, str | None]  # CPython -> as of when (None: the upstream gives no upload times)
    floor: str | None = None  # a dependency's: no tools older than the release that needed it


@dataclasses.dataclass(frozen=True)
class BuildRecord:
    """What one build did. ``targets`` holds each target's own outcome; ``failure_class`` and
    ``reason`` the first failure (or the failure of a stage every target shared)."""

    id: str
    request: str
    status: BuildStatus
    started: str
    finished: str
    durations: dict[str, float]
    project: str | None = None
    version: str | None = None
    source: SourceInfo | None = None
    recipe: RecipeInfo | None = None
    targets: tuple[TargetOutcome, ...] = ()
    images: tuple[ImageInfo, ...] = ()
    cibuildwheel_config: str = ""
    wheels: tuple[WheelInfo, ...] = ()
    published: tuple[str, ...] = ()
    signatures: tuple[SignatureInfo, ...] = ()
    requirements: Requirements | None = None
    inputs: tuple[BuildInput, ...] = ()
    system_packages: tuple[SystemPackage, ...] = ()
    inference_rounds: int = 0  # builds again after installing what the logs said was missing
    waiting_for: tuple[str, ...] = ()  # NAME==VERSION of build dependencies not in the index yet
    waiting_floor: str | None = None  # they are to be built with tools no older than this
    failure_class: FailureClass | None = None
    reason: str | None = None
    log_tail: str = ""
    factory_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["status"] = str(self.status)
        data["failure_class"] = str(self.failure_class) if self.failure_class else None
        data["targets"] = [t.to_dict() for t in self.targets]
        for name in ("source", "recipe", "requirements"):
            data[name] = dataclasses.asdict(data[name]) if data[name] is not None else None
        for name in ("images", "wheels", "signatures", "system_packages"):
            data[name] = [dataclasses.asdict(x) for x in data[name]]
        data["inputs"] = [i.to_dict() for i in self.inputs]
        data["published"] = list(self.published)
        data["waiting_for"] = list(self.waiting_for)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildRecord:
        return cls(
            id=data["id"], request=data["request"], status=BuildStatus(data["status"]), started=data["started"],
            finished=data["finished"], durations=dict(data.get("durations", {})), project=data.get("project"),
            version=data.get("version"),
            source=SourceInfo(**data["source"]) if data.get("source") else None,
            recipe=RecipeInfo(**data["recipe"]) if data.get("recipe") else None,
            targets=tuple(TargetOutcome.from_dict(t) for t in data.get("targets", [])),
            images=tuple(ImageInfo(**i) for i in data.get("images", [])),
            cibuildwheel_config=data.get("cibuildwheel_config", ""),
            wheels=tuple(WheelInfo(**w) for w in data.get("wheels", [])),
            published=tuple(data.get("published", [])),
            signatures=tuple(SignatureInfo(**s) for s in data.get("signatures", [])),
            requirements=_requirements(data["requirements"]) if data.get("requirements") else None,
            inputs=tuple(BuildInput.from_dict(i) for i in data.get("inputs", [])),
            system_packages=tuple(SystemPackage(**s) for s in data.get("system_packages", [])),
            inference_rounds=data.get("inference_rounds", 0),
            waiting_for=tuple(data.get("waiting_for", [])), waiting_floor=data.get("waiting_floor"),
            failure_class=FailureClass(data["failure_class"]) if data.get("failure_class") else None,
            reason=data.get("reason"), log_tail=data.get("log_tail", ""),
            factory_version=data.get("factory_version", ""),
        )

    @classmethod
    def from_json(cls, text: str) -> BuildRecord:
        return cls.from_dict(json.loads(text))


def _requirements(data: dict[str, Any]) -> Requirements:
    # Records are kept: one written before the resolution was per CPython has a single cutoff.
    cutoffs = data["cutoffs"] if "cutoffs" in data else {"*": data.get("cutoff")}
    return Requirements(tuple(data["requested"]), tuple(data["pins"]), dict(cutoffs), data.get("floor"))


def record_path(records_dir: Path, project: str, build_id: str) -> Path:
    """Where the record of build ``build_id`` of ``project`` (as requested, normalized) lives."""
    return records_dir / project / f"{build_id}.json"


def save(path: Path, record: BuildRecord) -> Path:
    write_text(path, record.to_json())
    return path


def load(path: Path) -> BuildRecord:
    return BuildRecord.from_json(path.read_text())


def load_all(records_dir: Path, project: str | None = None) -> list[BuildRecord]:
    """Every record (of one project, if given), oldest first."""
    pattern = f"{project}/*.json" if project else "*/*.json"
    return [load(p) for p in sorted(records_dir.glob(pattern), key=lambda p: p.name)]
