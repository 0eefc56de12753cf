"""What factory's index serves for a pin: its files of that project and version, their hashes
from the manifest, and (for lock files, which name URLs) where the index users install from
offers them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin

import httpx
from mousebender import simple
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from factory.failures import FactoryError
from factory.index.manifest import FileEntry, Manifest


class LockError(FactoryError):
    """A lock or requirements file that cannot be read or rewritten, or an index that does not
    offer our files."""


@dataclasses.dataclass(frozen=True)
class OurFile:
    filename: str
    sha256: str
    size: int | None
    upload_time: str
    url: str | None  # where the users' index offers it (None: not asked, as for requirements files)

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


@dataclasses.dataclass(frozen=True)
class Pin:
    """One pin a file names, and what became of it."""

    name: str
    version: str
    change: str  # "" when nothing changes; else what does, in a few words


class Ours:
    """The index's files by pin; with ``index_url``, their URLs on the index users install
    from (its pages are read once per project, and must offer our files with our hashes)."""

    def __init__(self, index_dir: Path, index_url: str | None = None,
                 client: Callable[[], httpx.Client] | None = None) -> None:
        manifest = Manifest.existing(index_dir)
        if manifest is None:
            raise LockError(f"{index_dir}: no index here (nothing was ever published)")
        with manifest:
            self._files: dict[NormalizedName, list[FileEntry]] = {}
            for entry in manifest.all_files():
                self._files.setdefault(NormalizedName(entry.project), []).append(entry)
        self.index_url = index_url if not index_url or index_url.endswith("/") else index_url + "/"
        self._client = client
        self._pages: dict[str, dict[str, tuple[str, str]]] = {}

    def files(self, name: str, version: str) -> list[OurFile]:
        """Our files of ``name`` ``version`` (none when we do not serve that pin); yanked ones too,
        as an exact pin may take them."""
        project = canonicalize_name(name)
        try:
            wanted = Version(version)
        except InvalidVersion:
            return []
        entries = [e for e in self._files.get(project, []) if _same(e.version, wanted)]
        return [OurFile(e.filename, e.sha256, e.size, e.upload_time, self._url(project, e) if self.index_url else None)
                for e in entries]

    def _url(self, project: str, entry: FileEntry) -> str:
        if project not in self._pages:
            self._pages[project] = self._page(project)
        found = self._pages[project].get(entry.filename)
        if found is None:
            raise LockError(f"{self.index_url} does not offer {entry.filename} ({project}'s page): is it the URL "
                            "factory's index is served at? (--index-url)")
        url, sha256 = found
        if sha256 and sha256.lower() != entry.sha256:
            raise LockError(f"{self.index_url} offers other bytes as {entry.filename} (sha256 {sha256}, ours "
                            f"{entry.sha256}): that is not factory's index, or a mirror of it that takes the "
                            "upstream's file of the same name")
        return url

    def _page(self, project: str) -> dict[str, tuple[str, str]]:
        url = urljoin(self.index_url or "", f"{project}/")
        if self._client is None:
            raise LockError("no client to read the index's pages with")
        with self._client() as client:
            try:
                response = client.get(url, headers={"accept": simple.ACCEPT_SUPPORTED})
            except httpx.TransportError as exc:
                raise LockError(f"cannot reach {url}: {exc}") from None
        if response.status_code != 200:
            raise LockError(f"{url} answered {response.status_code}: factory's index should serve {project} there")
        content_type = response.headers.get("content-type", "text/html").split(";")[0].strip()
        try:
            details = simple.parse_project_details(response.text, content_type, project)
        except (simple.UnsupportedMIMEType, simple.UnsupportedAPIVersion, ValueError, KeyError) as exc:
            raise LockError(f"{url} is not a simple index page ({content_type}): {exc}") from None
        page_url = str(response.url)
        return {f["filename"]: (urljoin(page_url, f["url"]).split("#", 1)[0], f.get("hashes", {}).get("sha256", ""))
                for f in details["files"]}


def _same(version: str, wanted: Version) -> bool:
    try:
        return Version(version) == wanted
    except InvalidVersion:
        return False
