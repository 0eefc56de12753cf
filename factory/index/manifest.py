"""The manifest: an SQLite database of every published file, the index's source of truth.

Pages are rendered from it; hashes, sizes and times are never recomputed from files.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from packaging.version import InvalidVersion, Version

from factory.failures import FactoryError
from factory.targets import Target, serves

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    filename        TEXT PRIMARY KEY,
    project         TEXT NOT NULL,
    version         TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    size            INTEGER NOT NULL,
    requires_python TEXT,
    metadata_sha256 TEXT,
    upload_time     TEXT NOT NULL,
    yanked          TEXT,
    path            TEXT NOT NULL,
    provenance      TEXT
);
CREATE INDEX IF NOT EXISTS files_by_project ON files (project);
CREATE INDEX IF NOT EXISTS files_by_sha256 ON files (sha256);
CREATE TABLE IF NOT EXISTS projects (
    name            TEXT PRIMARY KEY,
    status          TEXT,
    status_reason   TEXT
);
"""

#: The manifest's file, in the index directory.
MANIFEST = "manifest.sqlite3"

#: PEP 792 project statuses ("active" is what no status means).
PROJECT_STATUSES = ("active", "archived", "quarantined", "deprecated")


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One published file, as the manifest records it."""

    filename: str
    project: str
    version: str
    sha256: str
    size: int | None  # None only for pages passed through from the upstream, which may not say
    requires_python: str | None
    metadata_sha256: str | None
    upload_time: str  # ISO 8601, UTC, e.g. 2026-11-22T16:03:00.000000Z
    yanked: str | None  # None, or the reason ("" when none was given)
    path: str  # relative to the index directory
    provenance: str | None = None  # the PEP 740 provenance file, relative to the index directory

    @property
    def metadata_path(self) -> str:
        return self.path + ".metadata"


@dataclasses.dataclass(frozen=True)
class ProjectStatus:
    """PEP 792: what a project's maintainers say of it."""

    status: str
    reason: str | None = None


_COLUMNS = [f.name for f in dataclasses.fields(FileEntry)]


class ManifestError(FactoryError):
    """The manifest cannot be read or written (a corrupt file, a read-only directory)."""


class Manifest:
    """Access to an index's manifest; use as a context manager. ``Manifest.of(index_dir)`` opens
    (and creates) the index's own; ``Manifest.existing(index_dir)`` only one that exists."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # The default rollback journal, not WAL: the index directory may be shared by hosts (NFS),
            # where WAL's shared memory does not work; publishers are serialized by a lock anyway.
            self.db = sqlite3.connect(path, isolation_level=None, timeout=60)
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ManifestError(f"{path}: cannot open the index's manifest: {exc}") from exc

    @classmethod
    def of(cls, index_dir: Path) -> Manifest:
        return cls(index_dir / MANIFEST)

    @classmethod
    def existing(cls, index_dir: Path) -> Manifest | None:
        """The index's manifest, or None when nothing was ever published there."""
        path = index_dir / MANIFEST
        return cls(path) if path.exists() else None

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()

    def _entries(self, sql: str, args: Iterable[object] = ()) -> list[FileEntry]:
        return [FileEntry(*row) for row in self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM files {sql}", tuple(args))]

    def get(self, filename: str) -> FileEntry | None:
        found = self._entries("WHERE filename = ?", [filename])
        return found[0] if found else None

    def by_sha256(self, sha256: str) -> FileEntry | None:
        """The file with these bytes, if the index published it."""
        found = self._entries("WHERE sha256 = ? LIMIT 1", [sha256])
        return found[0] if found else None

    def files(self, project: str) -> list[FileEntry]:
        """A project's files in ascending order of file name."""
        return self._entries("WHERE project = ? ORDER BY filename", [project])

    def all_files(self) -> Iterator[FileEntry]:
        """Every file, by project then file name."""
        cursor = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM files ORDER BY project, filename")
        for row in cursor:
            yield FileEntry(*row)

    def projects(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT DISTINCT project FROM files ORDER BY project")]

    def has_project(self, project: str) -> bool:
        return self.db.execute("SELECT 1 FROM files WHERE project = ? LIMIT 1", (project,)).fetchone() is not None

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM files").fetchone()[0])

    def add(self, entries: Iterable[FileEntry]) -> None:
        """Record new files, all or none."""
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                f"INSERT INTO files ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                [dataclasses.astuple(e) for e in entries],
            )

    def set_yanked(self, project: str, version: str, reason: str | None) -> int:
        """Yank (``reason`` a string, maybe empty) or un-yank (None) every file of a version."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute("UPDATE files SET yanked = ? WHERE project = ? AND version = ?",
                                  (reason, project, version))
        return cur.rowcount

    def status(self, project: str) -> ProjectStatus | None:
        row = self.db.execute("SELECT status, status_reason FROM projects WHERE name = ?", (project,)).fetchone()
        return ProjectStatus(row[0], row[1]) if row and row[0] else None

    def set_status(self, project: str, status: ProjectStatus | None) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT INTO projects (name, status, status_reason) VALUES (?, ?, ?) ON CONFLICT (name) "
                "DO UPDATE SET status = excluded.status, status_reason = excluded.status_reason",
                (project, status.status if status else None, status.reason if status else None),
            )

    def statuses(self) -> dict[str, ProjectStatus]:
        rows = self.db.execute("SELECT name, status, status_reason FROM projects WHERE status IS NOT NULL")
        return {name: ProjectStatus(status, reason) for name, status, reason in rows}


def published_files(index_dir: Path, project: str, version: str) -> list[str]:
    """The file names of ``project`` ``version`` already in the index under ``index_dir``."""
    manifest = Manifest.existing(index_dir)
    if manifest is None:
        return []
    with manifest:
        return [e.filename for e in manifest.files(project) if e.version == version]


def coverage(index_dir: Path, pythons: Iterable[str], archs: Iterable[str]) -> dict[str, tuple[str, dict[str, list[str]]]]:
    """project -> (its newest version, CPython -> the architectures a wheel of it serves)."""
    manifest = Manifest.existing(index_dir)
    if manifest is None:
        return {}
    newest: dict[str, tuple[str, list[str]]] = {}
    with manifest:
        for entry in manifest.all_files():
            if not entry.filename.endswith(".whl"):
                continue
            current = newest.get(entry.project)
            try:
                newer = current is None or Version(entry.version) > Version(current[0])
            except InvalidVersion:
                newer = current is None
            if newer:
                newest[entry.project] = (entry.version, [entry.filename])
            elif current is not None and current[0] == entry.version:
                current[1].append(entry.filename)
    return {project: (version, {p: [a for a in archs if any(serves(f, Target(a, p)) for f in files)]
                                for p in pythons})
            for project, (version, files) in sorted(newest.items())}


def missing_targets(index_dir: Path, wanted: Iterable[tuple[str, str, str, int]]) -> list[tuple[str, int, list[str]]]:
    """(target, misses, [project==version, ...]) of the targets clients missed that the index
    still has no wheel for, most missed first; ``wanted`` is (project, version, target, misses)."""
    manifest = Manifest.existing(index_dir)
    files: dict[tuple[str, str], list[str]] = {}
    if manifest is not None:
        with manifest:
            for project in {p for p, *_ in wanted}:
                for entry in manifest.files(project):
                    files.setdefault((project, entry.version), []).append(entry.filename)
    totals: dict[str, tuple[int, list[str]]] = {}
    for project, version, target, misses in wanted:
        try:
            served = any(serves(f, Target.parse(target)) for f in files.get((project, version), [])
                         if f.endswith(".whl"))
        except (ValueError, IndexError):
            continue
        if not served:
            n, projects = totals.get(target, (0, []))
            totals[target] = (n + misses, [*projects, f"{project}=={version}"])
    return sorted(((t, n, p) for t, (n, p) in totals.items()), key=lambda x: -x[1])
