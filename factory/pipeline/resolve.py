"""Resolve: find a release's sdist on the upstream index (PEP 691 JSON, HTML fallback)."""

from __future__ import annotations

import dataclasses
from urllib.parse import urljoin

import httpx
from mousebender import simple
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from factory.failures import BuildFailure, FailureClass
from factory.pipeline.request import BuildRequest


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """An sdist as the upstream index declares it."""

    filename: str
    url: str
    sha256: str
    requires_python: str | None = None
    size: int | None = None
    yanked: str | None = None  # the reason, when the file is yanked ("" if none was given)
    upload_time: str | None = None  # PEP 700, ISO 8601; None when the index does not say


@dataclasses.dataclass(frozen=True)
class Release:
    """The release chosen for a request, and the sdist it will be built from."""

    project: NormalizedName
    version: Version
    sdist: SourceFile
    #: When the release appeared upstream (its sdist's PEP 700 upload time, else its first file's):
    #: build requirements are resolved as they were then. None when the index does not say.
    uploaded: str | None = None


def file_version(filename: str, project: NormalizedName) -> tuple[Version, bool] | None:
    """(version, is_sdist) of a distribution file of ``project``, or None for anything else."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
            is_sdist = False
        else:
            name, version = parse_sdist_filename(filename)
            is_sdist = True
    except (InvalidSdistFilename, InvalidWheelFilename):
        return None
    return (version, is_sdist) if name == project else None


def project_page(client: httpx.Client, upstream: str, project: NormalizedName) -> tuple[str, simple.ProjectDetails]:
    """Fetch and parse a project's page: its URL and its details. JSON is asked for first."""
    url = urljoin(upstream, f"{project}/")
    try:
        response = client.get(url, headers={"accept": simple.ACCEPT_SUPPORTED})
    except httpx.TransportError as exc:
        raise BuildFailure(FailureClass.NETWORK, f"cannot reach the upstream index at {url}: {exc}") from exc
    if response.status_code == 404:
        raise BuildFailure(FailureClass.NOT_FOUND, f"no project {project!r} on the upstream index ({url})")
    if response.status_code in (401, 403):
        raise BuildFailure(
            FailureClass.NETWORK,
            f"the upstream index refused access ({response.status_code}) to {url}: check its credentials",
        )
    if response.status_code != 200:
        raise BuildFailure(FailureClass.NETWORK, f"the upstream index answered {response.status_code} for {url}")
    content_type = response.headers.get("content-type", "text/html").split(";")[0].strip()
    try:
        details = simple.parse_project_details(response.text, content_type, project)
    except (simple.UnsupportedMIMEType, simple.UnsupportedAPIVersion, ValueError, KeyError) as exc:
        raise BuildFailure(FailureClass.NETWORK, f"{url} is not a simple index page ({content_type}): {exc}") from exc
    return str(response.url), details


def source_file(page_url: str, entry: simple.ProjectFileDetails) -> SourceFile:
    yanked = entry.get("yanked", False)
    return SourceFile(
        filename=entry["filename"],
        url=urljoin(page_url, entry["url"]),
        sha256=entry.get("hashes", {}).get("sha256", "").lower(),
        requires_python=entry.get("requires-python") or None,
        size=entry.get("size"),
        yanked=(yanked if isinstance(yanked, str) else "") if yanked else None,
        upload_time=entry.get("upload-time") or None,
    )


def _pick_sdist(files: list[SourceFile]) -> SourceFile:
    # .tar.gz is the standard sdist format (PEP 625); .zip only when it is all there is.
    return sorted(files, key=lambda f: (not f.filename.endswith(".tar.gz"), f.filename))[0]


def choose(request: BuildRequest, page_url: str, details: simple.ProjectDetails) -> Release:
    """Pick the sdist for ``request`` among a project page's files."""
    project = request.project
    versions: dict[Version, list[SourceFile]] = {}
    uploads: dict[Version, list[str]] = {}
    for entry in details["files"]:
        parsed = file_version(entry["filename"], project)
        if parsed is None:
            continue
        version, is_sdist = parsed
        uploads.setdefault(version, []).append(entry.get("upload-time") or "")
        sdists = versions.setdefault(version, [])
        if is_sdist:
            sdists.append(source_file(page_url, entry))
    if not versions:
        raise BuildFailure(FailureClass.NOT_FOUND, f"{project} has no releases on the upstream index")

    if request.version is not None:
        if request.version not in versions:
            newest = max(versions)
            raise BuildFailure(
                FailureClass.NOT_FOUND, f"{project} has no release {request.version} upstream (newest: {newest})"
            )
        sdists = versions[request.version]
        if not sdists:
            raise BuildFailure(
                FailureClass.NO_SOURCE, f"no sdist: cannot rebuild from source ({project} {request.version} has only wheels)"
            )
        # An exact pin may take a yanked file (PEP 592); prefer one that is not.
        sdist = _pick_sdist([f for f in sdists if f.yanked is None] or sdists)
        version = request.version
    else:
        usable = {v: [f for f in files if f.yanked is None] for v, files in versions.items()}
        candidates = [v for v, files in usable.items() if files]
        finals = [v for v in candidates if not v.is_prerelease]
        if not candidates:
            raise BuildFailure(FailureClass.NO_SOURCE, f"no sdist: cannot rebuild from source (no release of {project} has one)")
        version = max(finals or candidates)
        sdist = _pick_sdist(usable[version])

    if not sdist.sha256:
        raise BuildFailure(
            FailureClass.NO_SOURCE, f"the upstream index declares no sha256 for {sdist.filename}: cannot verify it"
        )
    times = sorted(t for t in uploads.get(version, []) if t)
    return Release(project, version, sdist, sdist.upload_time or (times[0] if times else None))


def resolve(request: BuildRequest, upstream: str, client: httpx.Client) -> Release:
    """Find the sdist to build for ``request`` on the ``upstream`` simple index."""
    page_url, details = project_page(client, upstream, request.project)
    return choose(request, page_url, details)


def release_time(client: httpx.Client, upstream: str, project: NormalizedName, version: Version) -> str | None:
    """When the upstream first had a file of ``project`` ``version`` (PEP 700), if it says; for a
    recipe's pinned source, whose release the build requirements must still be dated by."""
    try:
        _, details = project_page(client, upstream, project)
    except BuildFailure:
        return None
    times = sorted(entry.get("upload-time") or "" for entry in details["files"]
                   if (found := file_version(entry["filename"], project)) and found[0] == version)
    return next((t for t in times if t), None)
