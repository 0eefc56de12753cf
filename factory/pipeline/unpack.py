"""Unpack: extract an sdist into a fresh directory, refusing anything unsafe.

Every member is checked before a byte is written: no absolute paths, no ``..`` in names, no device
files, no sparse files, exactly one top-level directory, size and count limits (every member
counts, the archive's own ``./`` entries too), and no link that leads outside that directory.
Links are judged by where they really lead: the extraction is simulated member by member over the
archive's own symlinks (`_Tree`), so ``..`` in a link's target is fine while it stays inside, and a
``..`` that earlier links turn into an escape is not. tarfile's ``data`` filter then runs as a
second line of defence. Each refusal names the member.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from factory.failures import BuildFailure, FailureClass
from factory.pipeline.fetch import Source

# zip cannot store times before 1980; SOURCE_DATE_EPOCH must not precede it.
ZIP_EPOCH = 315532800
# Linux's own limit on symlinks followed in one lookup: beyond it, the kernel says ELOOP too.
MAX_LINK_HOPS = 40
# Names looked up while checking one archive, links followed included: far more than any sdist needs.
MAX_CHECK_STEPS = 10_000_000


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


class _Unsafe(Exception):
    """A member the simulated extraction cannot allow; the message says why (the caller names the member)."""


class _Node:
    """A directory, file or symbolic link of the simulated destination."""

    __slots__ = ("kind", "name", "parent", "children", "target", "member")

    def __init__(self, kind: str, name: str = "", parent: _Node | None = None, target: str = "",
                 member: str = "") -> None:
        self.kind = kind  # "dir", "file" or "symlink"
        self.name = name
        self.parent = parent  # None for the destination itself
        self.children: dict[str, _Node] = {}
        self.target = target  # a symlink's target, as the archive wrote it
        self.member = member  # a symlink's member name, for refusals


class _Where(NamedTuple):
    """Where a lookup got to: an existing node, or ``missing`` names below it (realpath goes on
    through names that do not exist); ``name`` is the first of those."""

    node: _Node
    missing: int = 0
    name: str = ""


class _Tree:
    """The destination as extraction changes it, member by member, in the archive's order.

    Paths resolve as ``os.path.realpath`` does (links followed, ``..`` after a link goes up from
    where the link leads, a missing name taken as it stands), so what the simulation says is where
    the kernel goes whenever the kernel gets there at all. Every link followed on the way must
    lead inside the top directory (every node but the destination itself: members all start with
    the top's name); leaving the destination is refused at once.
    """

    def __init__(self) -> None:
        self.root = _Node("dir")
        self.links: list[_Node] = []  # every symlink made, in order (some replaced since)
        self._hops = 0
        self._gap = False  # this lookup went through something missing or not a directory
        self._steps = 0

    def add(self, member: Member, parts: list[str]) -> None:
        """Apply ``member`` (named by ``parts``) as tarfile's extraction would; raise _Unsafe if it
        would write or point outside the top directory, or if extraction would fail on it."""
        self._begin()
        parent, name = self._parent(parts), parts[-1]
        entry = parent.children.get(name)
        if member.kind in ("symlink", "hardlink"):
            self._begin()  # a link's target is a lookup of its own
        if member.kind == "dir":
            if entry is None:  # otherwise os.mkdir finds it there and tarfile leaves it as it is
                self._make(parent, name, "dir")
        elif member.kind == "symlink":
            if entry is not None:
                self._replace(parent, name, parts)
            link = self._make(parent, name, "symlink", member.target, member.name)
            self.links.append(link)
            self._follow(link)
        elif member.kind == "hardlink":
            self._add_hardlink(parent, name, member.target)
        else:
            self._add_file(parent, name)

    def escaping_link(self) -> tuple[str, str] | None:
        """In the finished tree, the first symlink that leads outside the top directory (its member
        and why), or None: a later member can change where an earlier link leads."""
        for link in self.links:
            if link.parent is None or link.parent.children.get(link.name) is not link:
                continue  # replaced by a later member
            self._begin()
            try:
                self._follow(link)
            except _Unsafe as exc:
                return link.member, f"in the unpacked tree, {exc}"
        return None

    def _replace(self, parent: _Node, name: str, parts: list[str]) -> None:
        """Remove what is at ``name`` for a symlink member named ``parts``, as tarfile unlinks it;
        the link is then made by that name again, which must still lead to the same directory."""
        if parent.children[name].kind == "dir":  # unlink() fails, and tarfile would copy instead
            raise _Unsafe("a symbolic link in place of a directory")
        del parent.children[name]
        self._begin()
        if self._parent(parts) is not parent:
            raise _Unsafe("replaces a symbolic link its own name goes through")
        self._begin()

    def _add_hardlink(self, parent: _Node, name: str, target: str) -> None:
        """A hard link at ``name`` to ``target`` (from the archive root), as os.link makes it."""
        if name in parent.children:  # os.link() fails, and tarfile would copy instead
            raise _Unsafe(f"a hard link in place of an existing {parent.children[name].kind}")
        source = self._resolve(self.root, target)
        if source is None or not self._inside(source):
            raise _Unsafe(f"hard link leads outside the source tree ({target!r})")
        if self._gap:  # os.link() fails, and tarfile would copy instead
            raise _Unsafe(f"hard link through a name that does not exist ({target!r})")
        if source.missing or source.node.kind != "file":
            raise _Unsafe(f"hard link to something that is not a file extracted before it ({target!r})")
        self._make(parent, name, "file")

    def _add_file(self, parent: _Node, name: str) -> None:
        """A regular file at ``name``: open() writes through a symlink there, or creates the file."""
        entry = parent.children.get(name)
        if entry is not None and entry.kind == "symlink":
            where = self._follow(entry)
            if self._gap or where.missing > 1:
                raise _Unsafe("written through a symbolic link that leads nowhere a file can be made")
            if where.missing:
                parent, name, entry = where.node, where.name, None
            else:
                entry = where.node
        if entry is None:
            self._make(parent, name, "file")
        elif entry.kind == "dir":
            raise _Unsafe("a file in place of a directory")

    def _parent(self, parts: list[str]) -> _Node:
        """The directory a member named ``parts`` lands in, made as os.makedirs makes it."""
        node = self.root
        for name in parts[:-1]:
            self._step()
            child = node.children.get(name)
            if child is None:
                node = self._make(node, name, "dir")
                continue
            if child.kind == "symlink":
                where = self._follow(child)
                if self._gap or where.missing:
                    raise _Unsafe(f"its directory {'/'.join(parts[:-1])!r} leads through a link to nothing")
                child = where.node
            if child.kind != "dir":
                raise _Unsafe(f"its directory {'/'.join(parts[:-1])!r} is not a directory")
            node = child
        return node

    def _follow(self, link: _Node) -> _Where:
        """Where the symlink ``link`` leads; raise _Unsafe if outside the top directory or in a loop."""
        self._hops += 1
        if self._hops > MAX_LINK_HOPS:
            raise _Unsafe(f"a loop of symbolic links (more than {MAX_LINK_HOPS} followed, the last {link.member!r})")
        assert link.parent is not None  # a link is never the destination itself
        where = self._resolve(link.parent, link.target)
        if where is None or not self._inside(where):
            raise _Unsafe(f"link {link.member!r} leads outside the source tree ({link.target!r})")
        return where

    def _resolve(self, start: _Node, path: str) -> _Where | None:
        """Where ``path``, relative to the directory ``start``, leads, following every link (the last
        one too); None above the destination."""
        where = _Where(start)
        for name in path.split("/"):
            self._step()
            if where.missing or where.node.kind != "dir":  # the kernel stops here; realpath goes on
                self._gap = True
            if name in ("", "."):  # nothing to realpath, but the kernel wants a directory before it
                continue
            if name == "..":
                if where.missing:
                    where = _Where(where.node, where.missing - 1, where.name if where.missing > 1 else "")
                elif where.node.parent is None:
                    return None
                else:
                    where = _Where(where.node.parent)
            elif where.missing:
                where = _Where(where.node, where.missing + 1, where.name)
            elif (child := where.node.children.get(name)) is None:  # a file has none: realpath goes on
                where = _Where(where.node, 1, name)
            elif child.kind == "symlink":
                where = self._follow(child)
            else:
                where = _Where(child)
        return where

    def _make(self, parent: _Node, name: str, kind: str, target: str = "", member: str = "") -> _Node:
        """Put a new node at ``name`` in ``parent`` (in place of what was there) and return it."""
        node = parent.children[name] = _Node(kind, name, parent, target, member)
        return node

    def _begin(self) -> None:
        """Start one lookup: the kernel's link count and the gap flag are per lookup."""
        self._hops = 0
        self._gap = False

    def _step(self) -> None:
        """Count one name looked up: a hostile archive must not make the check itself too slow."""
        self._steps += 1
        if self._steps > MAX_CHECK_STEPS:
            raise _Unsafe(f"too many names and links to check (more than {MAX_CHECK_STEPS} lookups)")

    def _inside(self, where: _Where) -> bool:
        """Whether ``where`` is the top directory or under it: anywhere but the destination itself."""
        return where.node is not self.root


def check_members(archive: Path, members: Iterable[Member], limits: Limits) -> tuple[str, int]:
    """Check every member; return the top-level directory's name and the source epoch."""
    top: str | None = None
    tree: _Tree | None = None
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
            if not m.target:
                raise _refuse(archive, m.name, "link without a target")
        tree = tree or _Tree()
        try:
            tree.add(m, parts)
        except _Unsafe as exc:
            raise _refuse(archive, m.name, str(exc)) from None
        total += m.size
        if total > limits.max_bytes:
            raise _refuse(archive, m.name, f"unpacked size exceeds {limits.max_bytes} bytes (raise max-unpacked-size)")
        newest = max(newest, m.mtime)
        if parts[1:] == ["PKG-INFO"]:
            pkg_info_time = m.mtime
    if top is None or tree is None:
        raise BuildFailure(FailureClass.UNSAFE_ARCHIVE, f"{archive.name}: the archive is empty")
    escaping = tree.escaping_link()
    if escaping is not None:
        raise _refuse(archive, *escaping)
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


_PathArg = str | bytes | os.PathLike[str] | os.PathLike[bytes]  # what tarfile passes as a target path


class _LinkOrFail(tarfile.TarFile):
    """A TarFile that makes each link or fails. tarfile's own fallback, when a link cannot be made,
    extracts another member in its place, which can put a link's target text in another directory:
    the route of the 2025 filter bypasses, and not what `check_members` simulated."""

    def makelink(self, tarinfo: tarfile.TarInfo, targetpath: _PathArg) -> None:
        """Make the symlink (replacing what is there, as tarfile does) or the hard link, or raise."""
        if tarinfo.issym():
            if os.path.lexists(targetpath):
                os.unlink(targetpath)
            os.symlink(tarinfo.linkname, targetpath)
        else:
            os.link(tarinfo._link_target, targetpath)  # type: ignore[attr-defined]  # set by extractall

    def makelink_with_filter(self, tarinfo: tarfile.TarInfo, targetpath: _PathArg,
                             filter_function: Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None] | None = None,
                             extraction_root: str | None = None) -> None:
        """What Pythons with the 2025 tarfile fixes call instead of makelink: the same, no fallback."""
        self.makelink(tarinfo, targetpath)


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
            with _LinkOrFail.open(archive, "r:*") as tar:
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
