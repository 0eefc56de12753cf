"""``factory index check``: prove that an index is whole.

Every page, root and project, HTML and JSON, is read with a strict client's models (pypi-simple:
pydantic models for JSON, so a malformed field, a provenance URL that is not http(s) or a status
in the wrong place fails), then:

- every name is normalized, and the HTML and JSON form of each page say the same;
- each page says what the manifest (the source of truth) records: the same files, hashes, sizes,
  metadata hashes, requires-python, upload times, provenance and versions, and no file of a
  quarantined project (PEP 792); a yank or a project status the page does not show yet (a
  change interrupted between the manifest and the page) makes the page stale, counted, not
  faulted: ``factory publish --rebuild`` brings it up to date;
- every link resolves to the manifest's path for that file, in the index; files are in
  ascending order of name;
- every file the manifest records, its metadata sidecar, and for a signed file its Sigstore
  bundle and its PEP 740 provenance: the bytes hash to what the manifest says, and each bundle
  and each attestation in the provenance verifies (``signatures``) as a signature of exactly
  that file. A signed file whose bundle is missing is a problem, never "unsigned".

Provenance links may be relative to the page (no ``base-url``) or absolute under ``base-url``:
both are accepted, a relative one resolved against the page's URL as a client would (``factory
serve`` hands them out absolute). Files recorded in the manifest but not yet on a page (a publish
that was interrupted) are counted, not faulted: the next publish of the project or ``factory
publish --rebuild`` lists them.
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urljoin, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from factory.index.manifest import FileEntry, Manifest, ProjectStatus
from factory.index.pages import absolute_provenance
from factory.plumbing.files import sha256_file

#: Where pages are taken to be served when the index has no ``base-url``: links are resolved
#: against it, and must stay under it.
PLACEHOLDER = "http://index.invalid/"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleCheck(Protocol):
    """What checks signatures (``factory.verify.SignatureCheck``)."""

    def verify(self, bundle: bytes, filename: str, sha256: str) -> str | None:
        """None when ``bundle`` (a Sigstore bundle's JSON) is a valid signature of exactly that
        file, else why not."""


@dataclasses.dataclass(frozen=True)
class Report:
    projects: int
    files: int
    problems: tuple[str, ...]
    pending: int  # files in the manifest not on a page yet
    signatures: int = 0  # bundles and attestations verified
    stale: tuple[str, ...] = ()  # projects whose pages do not show a yank or status change yet

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclasses.dataclass(frozen=True)
class _Link:
    """One file as a page says it, read by the strict client."""

    url: str  # absolute
    sha256: str | None
    requires_python: str | None
    metadata_sha256: str | None | bool  # False: no metadata advertised
    yanked: str | None
    provenance: str | None  # absolute
    size: int | None = None
    upload_time: str | None = None


def check(index_dir: Path, base_url: str, signatures: BundleCheck | None = None,
          no_signatures_why: str = "no signature check configured") -> Report:
    """Check the index under ``index_dir``, served at ``base_url`` ("" when not configured), with
    ``signatures`` checking every bundle and attestation (None: each signed file is a problem,
    saying ``no_signatures_why``)."""
    with warnings.catch_warnings():  # a page newer than the client knows is caught below, not warned
        warnings.simplefilter("ignore")
        return _Checker(index_dir, base_url or PLACEHOLDER, signatures, no_signatures_why).run()


class _Checker:
    def __init__(self, index_dir: Path, root_url: str, signatures: BundleCheck | None, why: str) -> None:
        self.index_dir, self.root_url, self.signatures, self.why = index_dir, root_url, signatures, why
        self.problems: list[str] = []
        self.stale: set[str] = set()
        self.verified = 0

    def run(self) -> Report:
        manifest = Manifest.existing(self.index_dir)
        simple_dir = self.index_dir / "simple"
        if manifest is None and not (simple_dir / "index.html").exists():
            return Report(0, 0, (), 0)
        entries: dict[str, FileEntry] = {}
        statuses: dict[str, ProjectStatus] = {}
        if manifest is None:
            self.problems.append("the index has pages but no manifest (manifest.sqlite3)")
        else:
            with manifest as m:
                entries = {e.filename: e for e in m.all_files()}
                statuses = m.statuses()
        by_project: dict[str, list[FileEntry]] = {}
        for entry in entries.values():
            by_project.setdefault(entry.project, []).append(entry)
        names = self._root(simple_dir, set(by_project))
        seen: set[str] = set()
        for name in names or []:
            if canonicalize_name(name) != name:
                self.problems.append(f"root: {name!r} is not a normalized name")
                continue
            seen |= self._project(simple_dir / name, name, by_project.get(name, []), statuses.get(name))
        for entry in entries.values():
            self._files(entry)
        quarantined = {p for p, s in statuses.items() if s.status == "quarantined"}
        pending = sum(1 for e in entries.values() if e.filename not in seen and e.project not in quarantined)
        return Report(len(names or []), len(seen), tuple(self.problems), pending, self.verified,
                      tuple(sorted(self.stale)))

    # -- pages ---------------------------------------------------------------------------------

    def _root(self, simple_dir: Path, projects: set[str]) -> list[str] | None:
        from pypi_simple import IndexPage

        try:
            as_html = IndexPage.from_html((simple_dir / "index.html").read_text()).projects
            as_json = IndexPage.from_json_data(json.loads((simple_dir / "index.json").read_text())).projects
        except Exception as exc:  # OSError, JSON, pydantic's ValidationError, an unsupported version
            self.problems.append(f"root: page unreadable by a strict client: {_short(exc)}")
            return None
        if as_html != as_json:
            self.problems.append(f"root: HTML lists {len(as_html)} projects, JSON {len(as_json)}, or not the same")
        # A project the root lacks is a publish that stopped before the root: its files are pending.
        extra = sorted(set(as_json) - projects)
        for name in extra:
            self.problems.append(f"root: lists {name!r}, of which the manifest records no file")
        return as_json

    def _project(self, pages: Path, name: str, entries: list[FileEntry], status: ProjectStatus | None) -> set[str]:
        """Check one project's pages against each other and the manifest; the file names listed."""
        from pypi_simple import ProjectPage

        page_url = f"{self.root_url}simple/{name}/"
        try:
            html_text = (pages / "index.html").read_text()
            json_text = (pages / "index.json").read_text()
            raw = json.loads(json_text)
            # Relative provenance links resolved against the page, as factory serve hands them out.
            as_json = ProjectPage.from_json_data(json.loads(absolute_provenance(json_text, True, page_url)), page_url)
            as_html = ProjectPage.from_html(name, html_text, page_url)
        except Exception as exc:  # OSError, JSON, pydantic's ValidationError, an unsupported version
            self.problems.append(f"{name}: page unreadable by a strict client: {_short(exc)}")
            return set()
        if raw.get("name") != name or as_html.project not in (None, name):
            self.problems.append(f"{name}: the page names {raw.get('name')!r}")
        if "project-status" in raw.get("meta", {}):
            self.problems.append(f"{name}: the status is under `meta`, where PEP 792 clients do not look")
        expected = (status.status, status.reason) if status else (None, None)
        for form, page in (("HTML", as_html), ("JSON", as_json)):
            said = (page.status.value if page.status else None, page.status_reason)
            if said != expected:
                self.stale.add(name)
        html_files = {p.filename: _from_html(p, page_url) for p in as_html.packages}
        json_files = {p.filename: _from_json(p) for p in as_json.packages}
        listed = [p.filename for p in as_json.packages]
        if listed != sorted(listed):
            self.problems.append(f"{name}: files are not in ascending order of name")
        if set(html_files) != set(json_files):
            self.problems.append(f"{name}: HTML and JSON list different files")
        by_name = {e.filename: e for e in entries}
        if status is not None and status.status == "quarantined" and (html_files or json_files):
            self.problems.append(f"{name}: quarantined, yet its pages offer files (PEP 792 forbids it)")
        self._versions(name, raw.get("versions"), [f for f in listed if f in by_name])
        for filename in sorted(set(html_files) | set(json_files)):
            where = f"{name}/{filename}"
            h, j = html_files.get(filename), json_files.get(filename)
            if h is not None and j is not None:
                for key in ("url", "sha256", "requires_python", "metadata_sha256", "yanked", "provenance"):
                    if getattr(h, key) != getattr(j, key):
                        self.problems.append(f"{where}: `{key}` differs between HTML ({getattr(h, key)!r}) and JSON "
                                             f"({getattr(j, key)!r})")
            entry = by_name.get(filename)
            if entry is None:
                self.problems.append(f"{where}: on the page, but the manifest records no such file")
                continue
            self._agrees(name, where, j or h, entry)  # type: ignore[arg-type]
        return set(html_files) & set(by_name)

    def _versions(self, name: str, versions: Any, listed: list[str]) -> None:
        if not isinstance(versions, list) or not all(isinstance(v, str) and v for v in versions):
            self.problems.append(f"{name}: `versions` must be a list of versions, not {versions!r}")
            return
        for v in versions:
            try:
                Version(v)
            except InvalidVersion:
                self.problems.append(f"{name}: `versions` holds {v!r}, not a version")
        of_files = {_version_of(f) for f in listed}
        if {str(_normal(v)) for v in versions} != {str(_normal(v)) for v in of_files if v}:
            self.problems.append(f"{name}: `versions` {versions} are not the versions of its files")

    def _agrees(self, name: str, where: str, link: _Link, entry: FileEntry) -> None:
        """A file as the page says it, against the manifest."""
        if self._path(link.url) != entry.path:
            self.problems.append(f"{where}: the link does not resolve to the file's place in the index ({entry.path})")
        if link.sha256 is None or not _SHA256.fullmatch(link.sha256):
            self.problems.append(f"{where}: the page gives no sha256 (a hex digest)")
        elif link.sha256 != entry.sha256:
            self.problems.append(f"{where}: the page's sha256 is not the manifest's")
        if link.size is not None and link.size != entry.size:
            self.problems.append(f"{where}: the page's size is not the manifest's")
        if (link.metadata_sha256 or None) != entry.metadata_sha256:
            self.problems.append(f"{where}: the page's metadata sha256 is not the manifest's")
        if link.requires_python != entry.requires_python:
            self.problems.append(f"{where}: the page's requires-python is not the manifest's")
        if link.yanked != entry.yanked:
            self.stale.add(name)
        if link.upload_time is not None and link.upload_time != _time(entry.upload_time):
            self.problems.append(f"{where}: the page's upload-time is not the manifest's")
        wanted = entry.provenance
        if link.provenance is None or wanted is None:
            if link.provenance != wanted:
                self.problems.append(f"{where}: the page's provenance ({link.provenance!r}) is not the manifest's "
                                     f"({wanted!r})")
        elif self._path(link.provenance) != wanted:
            self.problems.append(f"{where}: the provenance link does not resolve to the file's provenance ({wanted})")

    def _path(self, url: str) -> str | None:
        """The path inside the index an absolute URL names, if it lies under the index's URL."""
        if not url.startswith(self.root_url):
            return None
        path = unquote(urlsplit(url).path[len(urlsplit(self.root_url).path):])
        parts = path.split("/")
        return None if any(p in ("", ".", "..") for p in parts) else path

    # -- files ---------------------------------------------------------------------------------

    def _files(self, entry: FileEntry) -> None:
        """The file, its sidecars and its signatures, as the manifest records them."""
        where = f"{entry.project}/{entry.filename}"
        path = self.index_dir / entry.path
        if not path.is_file():
            self.problems.append(f"{where}: the file is missing from the index ({entry.path})")
            return
        if sha256_file(path) != entry.sha256:
            self.problems.append(f"{where}: the file's sha256 differs from the manifest's")
        if entry.size is not None and path.stat().st_size != entry.size:
            self.problems.append(f"{where}: the file's size differs from the manifest's")
        if entry.metadata_sha256:
            sidecar = self.index_dir / entry.metadata_path
            if not sidecar.is_file():
                self.problems.append(f"{where}: the metadata sidecar is missing")
            elif sha256_file(sidecar) != entry.metadata_sha256:
                self.problems.append(f"{where}: the metadata sidecar's sha256 differs from the manifest's")
        if entry.provenance is None:
            return  # published unsigned (allow-unsigned): the pages say so
        bundle = path.with_name(path.name + ".sigstore.json")
        provenance = self.index_dir / entry.provenance
        if not bundle.is_file():
            self.problems.append(f"{where}: signed, but its Sigstore bundle is missing")
        if not provenance.is_file():
            self.problems.append(f"{where}: signed, but its provenance is missing")
        if self.signatures is None:
            self.problems.append(f"{where}: signed, but the signature was not checked: {self.why}")
            return
        if bundle.is_file():
            self._verify(where, "the bundle", bundle.read_bytes(), entry)
        if provenance.is_file():
            for number, attestation in enumerate(self._attestations(where, provenance.read_bytes()), 1):
                self._verify(where, f"attestation {number} of the provenance", attestation, entry)

    def _attestations(self, where: str, data: bytes) -> Iterable[bytes]:
        """The attestations of a PEP 740 provenance object, each as a Sigstore bundle."""
        from pypi_attestations import Attestation

        try:
            provenance = json.loads(data)
            bundles = provenance["attestation_bundles"]
            if provenance.get("version") != 1 or not isinstance(bundles, list) or not bundles:
                raise ValueError("not a version 1 provenance object with attestation bundles")
            found = [Attestation.model_validate(a).to_bundle().to_json().encode()
                     for b in bundles for a in b["attestations"]]
        except Exception as exc:  # JSON, a missing key, pydantic's ValidationError, a bundle that cannot be made
            self.problems.append(f"{where}: the provenance is not a PEP 740 provenance object: {_short(exc)}")
            return []
        if not found:
            self.problems.append(f"{where}: the provenance holds no attestation")
        return found

    def _verify(self, where: str, what: str, bundle: bytes, entry: FileEntry) -> None:
        assert self.signatures is not None
        why = self.signatures.verify(bundle, entry.filename, entry.sha256)
        if why is None:
            self.verified += 1
        else:
            self.problems.append(f"{where}: {what} is not a signature of this file: {why}")


def _from_html(package: Any, page_url: str) -> _Link:
    digests = package.metadata_digests
    return _Link(url=package.url, sha256=package.digests.get("sha256"), requires_python=package.requires_python,
                 metadata_sha256=digests.get("sha256") if digests is not None else False,
                 yanked=package.yanked_reason if package.is_yanked else None,
                 provenance=urljoin(page_url, package.provenance_url) if package.provenance_url else None)


def _from_json(package: Any) -> _Link:
    digests = package.metadata_digests
    return _Link(url=package.url, sha256=package.digests.get("sha256"), requires_python=package.requires_python,
                 metadata_sha256=digests.get("sha256") if digests is not None else False,
                 yanked=(package.yanked_reason or "") if package.is_yanked else None,
                 provenance=package.provenance_url, size=package.size,
                 upload_time=_time(package.upload_time.isoformat()) if package.upload_time else None)


def _time(value: str) -> str:
    """An ISO 8601 time, to the microsecond in UTC, for comparing two ways of writing it."""
    import datetime

    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(datetime.UTC).isoformat()


def _version_of(filename: str) -> Version | None:
    try:
        return parse_wheel_filename(filename)[1] if filename.endswith(".whl") else parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def _normal(version: str | Version) -> Version | str:
    try:
        return Version(str(version))
    except InvalidVersion:
        return str(version)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"
