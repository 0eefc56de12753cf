"""Unpack: extract an sdist into a fresh directory, refusing anything unsafe.

Every member is checked before a byte is written: no absolute paths, no ``..``, no links that
leave the tree, no device files, no sparse files, exactly one top-level directory, and size and
count limits (every member counts, the archive's own ``./`` entries too).
tarfile's ``data`` filter then runs as a second line of defence. Each refusal names the member.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import posixpath
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from factory.failures import BuildFailure, FailureClass
from factory.pipeline.fetch import Source

# zip cannot store times before 1980; SOURCE_DATE_EPOCH must not precede it.
ZIP_EPOCH = 315532800


@dataclasses.dataclass(frozen=True)
class Limits:
    """How big an unpacked sdist may be."""

    max_bytes: int
    max_files: int


@dataclasses.dataclass(frozen=True)
class Member:
    """An archive member, reduced to what the safety checks look at."""

    name: str
    kind: str  # "file", "dir", "symlink", "hardlink", "sparse" or "special"
    size: int = 0
    target: str = ""  # link target, for links
    mtime: int = 0


@dataclasses.dataclass(frozen=True)
class SourceTree:
    """An unpacked, checked sdist."""

    source: Source
    root: Path  # the sdist's single top-level directory
    epoch: int  # a SOURCE_DATE_EPOCH for reproducible builds: the time PKG-INFO was written


def _refuse(archive: Path, member: str, why: str) -> BuildFailure:
    return BuildFailure(FailureClass.UNSAFE_ARCHIVE, f"{archive.name}: member {member!r}: {why}")


def _parts(name: str) -> list[str]:
    return [p for p in name.split("/") if p not in ("", ".")]


def check_members(archive: Path, members: Iterable[Member], limits: Limits) -> tuple[str, int]:
    """Check every member; return the top-level directory's name and the source epoch."""
    top: str | None = None
    total = count = 0
    newest = 0
    pkg_info_time = 0
    for m in members:
        # Counted first: an archive of nothing but "./" entries must still hit the limit.
        count += 1
        if count > limits.max_files:
            raise _refuse(archive, m.name, f"more than {limits.max_files} members (raise max-unpacked-files)")
        if m.name.startswith("/") or m.name[1:3] == ":\\":
            raise _refuse(archive, m.name, "absolute path")
        parts = _parts(m.name)
        if not parts:
            if m.kind != "dir":
                raise _refuse(archive, m.name, "a member without a name that is not a directory")
            continue  # the archive's own "./" entry
        if ".." in parts:
            raise _refuse(archive, m.name, "path contains '..'")
        if m.kind == "special":
            raise _refuse(archive, m.name, "device, FIFO or other special file")
        if m.kind == "sparse":
            # Its map, not its declared size, says what extraction writes: it cannot be measured first.
            raise _refuse(archive, m.name, "sparse file (sdists have none)")
        if top is None:
            top = parts[0]
        elif parts[0] != top:
            raise _refuse(archive, m.name, f"a second top-level entry (the first was {top!r}); an sdist has one directory")
        if len(parts) == 1 and m.kind != "dir":
            raise _refuse(archive, m.name, "a file at the top level; an sdist has one directory")
        if m.kind in ("symlink", "hardlink"):
            if m.target.startswith("/"):
                raise _refuse(archive, m.name, f"link to an absolute path ({m.target!r})")
            # A symlink's target is relative to its directory; a hard link's to the archive root.
            base = posixpath.dirname("/".join(parts)) if m.kind == "symlink" else ""
            resolved = _parts(posixpath.normpath(posixpath.join(base, m.target)))
            if not resolved or resolved[0] != top or ".." in resolved or ".." in _parts(m.target):
                raise _refuse(archive, m.name, f"link escapes the source tree ({m.target!r})")
        total += m.size
        if total > limits.max_bytes:
            raise _refuse(archive, m.name, f"unpacked size exceeds {limits.max_bytes} bytes (raise max-unpacked-size)")
        newest = max(newest, m.mtime)
        if parts[1:] == ["PKG-INFO"]:
            pkg_info_time = m.mtime
    if top is None:
        raise BuildFailure(FailureClass.UNSAFE_ARCHIVE, f"{archive.name}: the archive is empty")
    return top, max(pkg_info_time or newest, ZIP_EPOCH)


def _tar_members(tar: tarfile.TarFile) -> Iterator[Member]:
    for info in tar:
        if info.isdir():
            kind = "dir"
        elif info.issparse():  # before isreg(), which a sparse member also is
            kind = "sparse"
        elif info.issym():
            kind = "symlink"
        elif info.islnk():
            kind = "hardlink"
        elif info.isreg():
            kind = "file"
        else:
            kind = "special"
        mtime = info.mtime if isinstance(info.mtime, int) or math.isfinite(info.mtime) else 0
        yield Member(info.name, kind, info.size if info.isreg() else 0, info.linkname, int(mtime))


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> Iterator[Member]:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):  # refused before its target is read: it could be a compressed bomb
            raise _refuse(archive, info.filename, "symbolic link in a zip sdist")
        if info.is_dir():
            kind = "dir"
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # many zips carry permission bits only
            kind = "special"
        else:
            kind = "file"
        try:
            mtime = int(datetime.datetime(*info.date_time, tzinfo=datetime.UTC).timestamp())
        except ValueError:  # a DOS date of month 0 or second 62: no time, not an error
            mtime = 0
        yield Member(info.filename, kind, info.file_size, "", mtime)


def _extract_zip(archive: Path, zf: zipfile.ZipFile, dest: Path, limits: Limits) -> None:
    # Sizes in a zip's headers can lie: count what is really written.
    written = 0
    for info in zf.infolist():
        parts = _parts(info.filename)
        if not parts:
            continue
        path = dest.joinpath(*parts)
        if info.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, path.open("wb") as out:
            while chunk := src.read(1024 * 1024):
                written += len(chunk)
                if written > limits.max_bytes:
                    raise _refuse(archive, info.filename, f"unpacked size exceeds {limits.max_bytes} bytes")
                out.write(chunk)
        if (info.external_attr >> 16) & 0o111:
            path.chmod(0o755)


def unpack(source: Source, dest: Path, limits: Limits) -> SourceTree:
    """Unpack ``source`` under ``dest`` (which must not exist yet) and return its tree.

    On refusal, ``dest`` is removed: a half-unpacked tree is never used.
    """
    archive = source.path
    dest.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                top, epoch = check_members(archive, _zip_members(archive, zf), limits)
                _extract_zip(archive, zf, dest, limits)
        else:
            with tarfile.open(archive, "r:*") as tar:
                top, epoch = check_members(archive, _tar_members(tar), limits)
                try:
                    tar.extractall(dest, filter="data")
                except tarfile.FilterError as exc:
                    member = getattr(exc, "tarinfo", None)
                    raise _refuse(archive, member.name if member else "?", str(exc)) from exc
    except BuildFailure:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except Exception as exc:  # corrupt, encrypted, unknown compression, a link to nothing: hostile or broken
        shutil.rmtree(dest, ignore_errors=True)
        raise BuildFailure(FailureClass.UNSAFE_ARCHIVE,
                           f"{archive.name}: cannot be unpacked ({type(exc).__name__}: {exc})") from exc
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return SourceTree(source, dest / top, epoch)
