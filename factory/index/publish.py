"""Publish into the static index, atomically and immutably; and change what is published.

Order matters for readers: files and their sidecars first, then the manifest, then the project
pages, then (for a new project) the root pages, each page pair switched at once (see tree.py).
A crash anywhere leaves a valid index. Publishers take a lock on the index directory, one at a
time. A file name, once published, never points at other bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import itertools
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from factory.failures import FactoryError
from factory.index import pages, tree
from factory.index.distfile import DistFile
from factory.index.manifest import FileEntry, Manifest, ProjectStatus
from factory.plumbing.files import copy_file, write_bytes


class PublishError(FactoryError):
    """The index refused a change; nothing of it was made."""


@dataclasses.dataclass(frozen=True)
class Published:
    """What one call changed."""

    entries: tuple[FileEntry, ...]  # newly published (already-present identical files are left out)
    pages: tuple[Path, ...]  # page directories rewritten


def file_path(sha256: str, filename: str) -> str:
    """Where a file is stored, relative to the index directory: by its content."""
    return f"files/{sha256[:2]}/{sha256[2:4]}/{sha256}/{filename}"


@contextlib.contextmanager
def locked(index_dir: Path) -> Iterator[Manifest]:
    """Hold the index's publish lock (publishers on this host, or on a shared directory, queue
    up) and its manifest."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with Manifest.of(index_dir) as manifest:
                yield manifest
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_project(index_dir: Path, manifest: Manifest, project: str, base_url: str, sync: bool = True) -> Path:
    entries = manifest.files(project)
    status = manifest.status(project)
    return tree.write_project(index_dir / "simple", project, pages.project_html(project, entries, status, base_url),
                              pages.project_json(project, entries, status, base_url), sync)


def write_root(index_dir: Path, manifest: Manifest, sync: bool = True) -> Path:
    projects = manifest.projects()
    return tree.write_root(index_dir / "simple", pages.root_html(projects), pages.root_json(projects), sync)


def publish(index_dir: Path, dists: Sequence[DistFile], base_url: str) -> Published:
    """Publish ``dists`` (all or none), rewriting only the pages they touch."""
    with locked(index_dir) as manifest:
        fresh: list[DistFile] = []
        for dist in dists:
            known = manifest.get(dist.filename)
            if known is None:
                fresh.append(dist)
            elif known.sha256 != dist.sha256:
                raise PublishError(
                    f"{dist.filename} is already published with sha256 {known.sha256}; the index is immutable, "
                    "so a rebuild with different bytes needs a new file name (a wheel build tag)"
                )
        if not fresh:  # all published before; but a publish interrupted before its pages must not hide them
            return Published((), tuple(_relist(index_dir, manifest, {d.project for d in dists}, base_url)))
        uploaded = now()
        entries = []
        for dist in fresh:
            path = file_path(dist.sha256, dist.filename)
            copy_file(dist.path, index_dir / path)
            if dist.metadata is not None:
                write_bytes(index_dir / (path + ".metadata"), dist.metadata)
            if dist.bundle is not None:
                write_bytes(index_dir / (path + ".sigstore.json"), dist.bundle)
            if dist.provenance is not None:
                write_bytes(index_dir / (path + ".provenance"), dist.provenance)
            entries.append(FileEntry(
                filename=dist.filename, project=dist.project, version=dist.version, sha256=dist.sha256,
                size=dist.size, requires_python=dist.requires_python, metadata_sha256=dist.metadata_sha256,
                upload_time=uploaded, yanked=None, path=path,
                provenance=path + ".provenance" if dist.provenance is not None else None,
            ))
        new_projects = {e.project for e in entries if not manifest.has_project(e.project)}
        manifest.add(entries)
        written = [write_project(index_dir, manifest, p, base_url) for p in sorted({e.project for e in entries})]
        if new_projects or not (index_dir / "simple" / "index.html").exists():
            written.append(write_root(index_dir, manifest))
        return Published(tuple(entries), tuple(written))


def _on_page(index_dir: Path, project: str) -> set[str] | None:
    """The file names a project's JSON page lists (None: no page)."""
    try:
        return {f["filename"] for f in json.loads((index_dir / "simple" / project / "index.json").read_text())["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _relist(index_dir: Path, manifest: Manifest, projects: set[str], base_url: str) -> list[Path]:
    """Rewrite the pages of ``projects`` that do not list all their published files (an earlier
    publish was interrupted between the manifest and the pages)."""
    written = []
    root = _on_root(index_dir)
    for project in sorted(projects):
        listed = _on_page(index_dir, project)
        if listed is None or any(e.filename not in listed for e in manifest.files(project)):
            written.append(write_project(index_dir, manifest, project, base_url))
    if any(p not in root for p in projects):
        written.append(write_root(index_dir, manifest))
    return written


def _on_root(index_dir: Path) -> set[str]:
    try:
        return {p["name"] for p in json.loads((index_dir / "simple" / "index.json").read_text())["projects"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def relist(index_dir: Path, project: str, base_url: str) -> list[Path]:
    """Make sure every published file of ``project`` is on its page (a no-op when it is)."""
    with locked(index_dir) as manifest:
        return _relist(index_dir, manifest, {project}, base_url) if manifest.has_project(project) else []


def yank(index_dir: Path, project: str, version: str, reason: str | None, base_url: str) -> int:
    """Yank every file of ``project`` ``version`` (PEP 592), or un-yank with ``reason=None``."""
    with locked(index_dir) as manifest:
        n = manifest.set_yanked(project, version, reason)
        if n == 0:
            raise PublishError(f"{project} {version} has no file in the index")
        write_project(index_dir, manifest, project, base_url)
        return n


def set_status(index_dir: Path, project: str, status: ProjectStatus | None, base_url: str) -> None:
    """Set (or clear, with None) a project's PEP 792 status."""
    with locked(index_dir) as manifest:
        if not manifest.has_project(project):
            raise PublishError(f"{project} is not in the index")
        manifest.set_status(project, status)
        write_project(index_dir, manifest, project, base_url)


def rebuild(index_dir: Path, base_url: str) -> int:
    """Write every page again from the manifest; returns the number of projects."""
    with locked(index_dir) as manifest:
        statuses = manifest.statuses()
        simple_dir = index_dir / "simple"
        projects = []
        for project, group in itertools.groupby(manifest.all_files(), key=lambda e: e.project):
            entries = list(group)
            status = statuses.get(project)
            tree.write_project(simple_dir, project, pages.project_html(project, entries, status, base_url),
                               pages.project_json(project, entries, status, base_url), sync=False)
            projects.append(project)
        write_root(index_dir, manifest, sync=False)
        tree.remove_temporaries(index_dir / "simple")
        os.sync()  # one flush for all the pages written unsynced above
        return len(projects)
