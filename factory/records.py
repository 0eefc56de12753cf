"""Build records: one JSON file per build, saying what happened and how long each stage took."""

from __future__ import annotations

import dataclasses
import datetime
import json
import secrets
from pathlib import Path
from typing import Any

from factory import atomic


def new_build_id() -> str:
    """Sortable by time, unique across hosts: ``20261122T160300Z-3f9a1c``."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclasses.dataclass(frozen=True)
class BuildRecord:
    """What one ``factory build`` did.

    ``status`` is "built" (every target that was not skipped has a wheel in the index), "partial"
    (some have), or "failed" (none has); ``targets`` holds each target's own outcome, and
    ``failure_class``/``reason`` the first failure.
    """

    id: str
    request: str
    status: str
    started: str
    finished: str
    durations: dict[str, float]
    project: str | None = None
    version: str | None = None
    source: dict[str, Any] | None = None  # url, filename, sha256
    recipe: dict[str, str] | None = None  # path, digest (sha256 of the recipe and its patches)
    targets: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # target, status, wheel, failure
    images: list[dict[str, str]] = dataclasses.field(default_factory=list)  # arch, tag, id
    cibuildwheel_config: str = ""
    wheels: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # filename, sha256, size, policy
    published: list[str] = dataclasses.field(default_factory=list)
    signatures: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # filename, log_index, identity, issuer
    failure_class: str | None = None
    reason: str | None = None
    log_tail: str = ""
    factory_version: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BuildRecord:
        return cls(**json.loads(text))


def record_path(records_dir: Path, project: str | None, build_id: str) -> Path:
    return records_dir / (project or "_unresolved") / f"{build_id}.json"


def save(records_dir: Path, record: BuildRecord) -> Path:
    path = record_path(records_dir, record.project, record.id)
    atomic.write_text(path, record.to_json())
    return path


def load_all(records_dir: Path, project: str | None = None) -> list[BuildRecord]:
    """Every record (of one project, if given), oldest first."""
    pattern = f"{project}/*.json" if project else "*/*.json"
    return [BuildRecord.from_json(p.read_text()) for p in sorted(records_dir.glob(pattern), key=lambda p: p.name)]
