"""Stage 6, publish: put wheels into the static index, atomically and immutably.

Order matters for readers: files and sidecars first, then the manifest, then the project
page, then the root page; each written to a temporary file and renamed into place, so a crash
leaves either the old page or the new one. Publishers take a lock on the index directory, one
at a time. A file name, once published, never points at other bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
from collections.abc import Iterator, Sequence
from pathlib import Path

from factory import atomic
from factory.failures import FactoryError
from factory.index import pages
from factory.index.distfile import DistFile
from factory.index.manifest import FileEntry, Manifest


class PublishError(FactoryError):
    """The index refused a file; nothing of the batch was published."""


@dataclasses.dataclass(frozen=True)
class Published:
    """What one call to :func:`publish` changed."""

    entries: tuple[FileEntry, ...]  # newly published (already-present identical files are left out)
    pages: tuple[Path, ...]  # pages rewritten


def file_path(sha256: str, filename: str) -> str:
    """Where a file is stored, relative to the index directory: by its content."""
    return f"files/{sha256[:2]}/{sha256[2:4]}/{sha256}/{filename}"


@contextlib.contextmanager
def locked(index_dir: Path) -> Iterator[None]:
    """Hold the index's publish lock: publishers on this host (or a shared directory) queue up."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_project_page(index_dir: Path, manifest: Manifest, project: str) -> Path:
    page = index_dir / "simple" / project / "index.html"
    atomic.write_text(page, pages.project_html(project, manifest.files(project)))
    return page


def write_root_page(index_dir: Path, manifest: Manifest) -> Path:
    page = index_dir / "simple" / "index.html"
    atomic.write_text(page, pages.root_html(manifest.projects()))
    return page


def publish(index_dir: Path, dists: Sequence[DistFile]) -> Published:
    """Publish ``dists`` (all or none), rewriting only the pages they touch."""
    with locked(index_dir), Manifest(index_dir / "manifest.sqlite3") as manifest:
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
        if not fresh:
            return Published((), ())
        uploaded = now()
        entries = []
        for dist in fresh:
            path = file_path(dist.sha256, dist.filename)
            atomic.copy_file(dist.path, index_dir / path)
            atomic.write_bytes(index_dir / (path + ".metadata"), dist.metadata)
            entries.append(FileEntry(
                filename=dist.filename, project=dist.project, version=dist.version, sha256=dist.sha256,
                size=dist.size, requires_python=dist.requires_python, metadata_sha256=dist.metadata_sha256,
                upload_time=uploaded, yanked=None, path=path,
            ))
        new_projects = {e.project for e in entries if not manifest.has_project(e.project)}
        manifest.add(entries)
        written = [write_project_page(index_dir, manifest, p) for p in sorted({e.project for e in entries})]
        if new_projects or not (index_dir / "simple" / "index.html").exists():
            written.append(write_root_page(index_dir, manifest))
        return Published(tuple(entries), tuple(written))
