"""Fetch: download an sdist (or a seed wheel) into a content-addressed cache, checking its sha256."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path

import httpx

from factory.failures import BuildFailure, FailureClass
from factory.pipeline.resolve import Release, SourceFile
from factory.plumbing.files import CHUNK, sha256_file


@dataclasses.dataclass(frozen=True)
class Source:
    """A verified sdist on disk."""

    release: Release
    path: Path
    sha256: str


def cache_path(cache_dir: Path, sha256: str, filename: str, kind: str = "sdists") -> Path:
    """Where the file with this hash lives in the cache (``sdists/ab/<sha256>/<filename>``)."""
    return cache_dir / kind / sha256[:2] / sha256 / filename


def fetch(release: Release, cache_dir: Path, client: httpx.Client) -> Source:
    """Return the release's sdist from the cache, downloading it (streamed) when missing.

    The bytes must hash to what the index declared; on a mismatch nothing is kept.
    """
    return Source(release, download(release.sdist, cache_dir, client), release.sdist.sha256)


def download(sdist: SourceFile, cache_dir: Path, client: httpx.Client, kind: str = "sdists") -> Path:
    """A file the upstream declared, from the cache or downloaded, its sha256 checked."""
    # The file name comes from the upstream: use only its last component.
    filename = os.path.basename(sdist.filename)
    target = cache_path(cache_dir, sdist.sha256, filename, kind)
    if target.is_file() and sha256_file(target) == sdist.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with client.stream("GET", sdist.url) as response:
                    if response.status_code == 404:
                        raise BuildFailure(FailureClass.NOT_FOUND, f"{sdist.url}: 404, the index lists a file that is not there")
                    if response.status_code != 200:
                        raise BuildFailure(FailureClass.NETWORK, f"{sdist.url}: the server answered {response.status_code}")
                    for chunk in response.iter_bytes(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            except httpx.TransportError as exc:
                raise BuildFailure(FailureClass.NETWORK, f"{sdist.url}: download failed: {exc}") from exc
        got = digest.hexdigest()
        if got != sdist.sha256:
            raise BuildFailure(
                FailureClass.HASH_MISMATCH,
                f"{filename}: sha256 is {got}, but the index declared {sdist.sha256}; not using it",
            )
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target
