"""Debian's Contents index: which package ships which file, for the builder image's suite and
architecture. It is on the same mirror as the packages (``dists/<suite>/main/Contents-<arch>.gz``,
about 11 MB); factory downloads it once per image, keeps only what a build can miss (headers,
libraries, pkg-config files, programs) in an SQLite file in the cache, and refreshes it when
the builder image changes."""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx

from factory.failures import BuildFailure, FailureClass

#: The files a failed build can be missing, by where Debian puts them.
KEPT = re.compile(rb"^(?:usr/include/|usr/lib/[^ \t]*(?:\.so|\.a|\.pc)[ \t]|usr/share/pkgconfig/|usr/bin/|bin/)")


class ContentsIndex:
    """File -> packages, for one suite and architecture."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ContentsIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def packages(self, path_pattern: str, basename: str) -> dict[str, list[str]]:
        """path -> packages, for the files named ``basename`` whose path matches the SQL LIKE
        ``path_pattern`` (no leading slash, as Debian writes them)."""
        rows = self.db.execute("SELECT path, packages FROM files WHERE basename = ? AND path LIKE ? ORDER BY path",
                               (basename, path_pattern))
        return {path: packages.split(",") for path, packages in rows}

    @classmethod
    def ensure(cls, cache_dir: Path, mirror: str, suite: str, arch: str, image_id: str,
               client: httpx.Client) -> ContentsIndex:
        """The index for ``suite``/``arch``, downloaded unless the cache has it for this image."""
        path = cache_dir / "contents" / f"{suite}-{arch}.sqlite3"
        if path.is_file():
            index = cls(path)
            row = index.db.execute("SELECT value FROM meta WHERE key = 'image'").fetchone()
            if row and row[0] == image_id:
                return index
            index.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"{mirror.rstrip('/')}/dists/{suite}/main/Contents-{arch}.gz"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".contents-")
        os.close(fd)
        try:
            _build(Path(tmp), _download(client, url), image_id)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return cls(path)


def _download(client: httpx.Client, url: str) -> Iterator[bytes]:
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise BuildFailure(FailureClass.NETWORK, f"{url}: the Debian mirror answered {response.status_code}")
            decompressor = gzip.GzipFile(fileobj=_Stream(response.iter_bytes(1 << 20)))
            yield from decompressor
    except httpx.TransportError as exc:
        raise BuildFailure(FailureClass.NETWORK, f"cannot download Debian's Contents index {url}: {exc}") from exc


class _Stream:
    """A file-like object over an iterator of bytes, for GzipFile."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.buffer = chunks, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            try:
                self.buffer += next(self.chunks)
            except StopIteration:
                break
        if size < 0:
            data, self.buffer = self.buffer, b""
        else:
            data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def _build(path: Path, lines: Iterator[bytes], image_id: str) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE files (path TEXT NOT NULL, basename TEXT NOT NULL, packages TEXT NOT NULL)")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def rows() -> Iterator[tuple[str, str, str]]:
        for line in lines:
            if not KEPT.match(line):
                continue
            file, _, packages = line.rstrip(b"\n").rpartition(b" ")
            file = file.rstrip()
            names = ",".join(p.rsplit("/", 1)[-1] for p in packages.decode("utf-8", "replace").split(","))
            text = file.decode("utf-8", "replace")
            yield text, text.rsplit("/", 1)[-1], names

    with db:
        db.executemany("INSERT INTO files VALUES (?, ?, ?)", rows())
        db.execute("CREATE INDEX files_by_basename ON files (basename)")
        db.execute("INSERT INTO meta VALUES ('image', ?)", (image_id,))
    db.close()
