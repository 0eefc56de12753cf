"""Render the simple index's pages from manifest entries, in both forms of the API:
HTML (PEP 503) and JSON (PEP 691), carrying the same facts.

What the pages say: hashes; ``requires-python``; yanked (PEP 592); the core metadata sidecar
(PEP 658 and 714); ``size``, ``upload-time`` and ``versions`` (PEP 700); ``provenance``
(PEP 740: relative to the page like the file links, or absolute under ``base-url``); the
project status (PEP 792: a quarantined project's pages offer no files).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from html import escape, unescape
from urllib.parse import urljoin

from packaging.version import InvalidVersion, Version

from factory.index.manifest import FileEntry, ProjectStatus

#: The simple API version the pages follow (PEP 792 is 1.4).
API_VERSION = "1.4"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"


def _html(title: str, head: Sequence[str], body: Sequence[str]) -> str:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        *(f"    {line}" for line in head),
        f"    <title>{escape(title)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>{escape(title)}</h1>",
        *(f"    {line}" for line in body),
        "  </body>",
        "</html>",
        "",
    ]
    return "\n".join(lines)


def _json(data: dict) -> str:
    # Compact: an indent would switch json to its pure-Python encoder, ten times slower.
    return json.dumps(data, separators=(",", ":")) + "\n"


def root_html(projects: Sequence[str]) -> str:
    """The root page: one link per (normalized) project name."""
    return _html("Simple index", [], [f'<a href="{escape(p)}/">{escape(p)}</a><br>' for p in projects])


def root_json(projects: Sequence[str]) -> str:
    return _json({"meta": {"api-version": API_VERSION}, "projects": [{"name": p} for p in projects]})


def file_url(entry: FileEntry) -> str:
    """The link to a file from its project page (``simple/<project>/``)."""
    return f"../../{entry.path}"


def provenance_url(entry: FileEntry, base_url: str) -> str | None:
    """The link to a file's PEP 740 provenance: under ``base_url`` (where the index is served,
    ending in /) when one is configured; else relative to the project page, like the file link,
    so that a copied or served index keeps pointing at its own files (``factory serve`` makes it
    absolute for its clients, see :func:`absolute_provenance`)."""
    if not entry.provenance:
        return None
    return base_url + entry.provenance if base_url else f"../../{entry.provenance}"


_RELATIVE_PROVENANCE = re.compile(r'data-provenance="(\.\./[^"]*)"')


def absolute_provenance(page: str, as_json: bool, page_url: str) -> str:
    """A page (HTML or JSON, as rendered here) whose relative provenance links are made absolute
    against ``page_url``, the URL it is served at: PEP 740 wants fully qualified URLs, and only
    whoever serves the page knows its URL."""
    if as_json:
        data = json.loads(page)
        for item in data.get("files", []):
            if isinstance(item.get("provenance"), str):
                item["provenance"] = urljoin(page_url, item["provenance"])
        return _json(data)
    return _RELATIVE_PROVENANCE.sub(
        lambda m: f'data-provenance="{escape(urljoin(page_url, unescape(m[1])))}"', page)


def offered(entries: Sequence[FileEntry], status: ProjectStatus | None) -> Sequence[FileEntry]:
    """The files a project page lists: none for a quarantined project (PEP 792)."""
    return () if status is not None and status.status == "quarantined" else entries


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def project_html(project: str, entries: Sequence[FileEntry], status: ProjectStatus | None, base_url: str,
                 upstream: Collection[str] = ()) -> str:
    """A project page: one link per file, in the order given (ascending file name). Files named
    in ``upstream`` are the upstream's, passed through by ``factory serve`` (not rebuilt)."""
    head = []
    if status is not None:
        head.append(f'<meta name="pypi:project-status" content="{escape(status.status)}">')
        if status.reason:
            head.append(f'<meta name="pypi:project-status-reason" content="{escape(status.reason)}">')
    links = []
    for entry in offered(entries, status):
        # Every value is escaped: pages of upstream projects carry what the upstream said.
        fragment = f"#sha256={entry.sha256}" if entry.sha256 else ""
        attrs = [f'href="{escape(file_url(entry) + fragment)}"']
        if entry.requires_python:
            attrs.append(f'data-requires-python="{escape(entry.requires_python)}"')
        if entry.metadata_sha256:
            value = escape(f"sha256={entry.metadata_sha256}")
            # PEP 714's name, and PEP 658's for clients that predate it.
            attrs.append(f'data-core-metadata="{value}" data-dist-info-metadata="{value}"')
        if entry.yanked is not None:
            attrs.append(f'data-yanked="{escape(entry.yanked)}"')
        if entry.filename in upstream:  # not ours: the client may install it, and factory learns of it
            attrs.append('data-factory-upstream="true"')
        elif (url := provenance_url(entry, base_url)) is not None:
            attrs.append(f'data-provenance="{escape(url)}"')
        else:  # published without a signature (allow-unsigned): the page says so
            attrs.append('data-factory-unsigned="true"')
        links.append(f"<a {' '.join(attrs)}>{escape(entry.filename)}</a><br>")
    return _html(f"Links for {project}", head, links)


def project_json(project: str, entries: Sequence[FileEntry], status: ProjectStatus | None, base_url: str,
                 upstream: Collection[str] = ()) -> str:
    """The same page as PEP 691 JSON, with what PEP 700, PEP 740 and PEP 792 add."""
    page: dict = {"meta": {"api-version": API_VERSION}, "name": project}
    if status is not None:  # PEP 792 puts it beside "meta", not in it
        page["project-status"] = {"status": status.status, **({"reason": status.reason} if status.reason else {})}
    entries = offered(entries, status)
    files = []
    for entry in entries:
        item: dict = {"filename": entry.filename, "url": file_url(entry),
                      "hashes": {"sha256": entry.sha256} if entry.sha256 else {}}
        if entry.requires_python:
            item["requires-python"] = entry.requires_python
        if entry.metadata_sha256:
            item["core-metadata"] = {"sha256": entry.metadata_sha256}
            item["dist-info-metadata"] = {"sha256": entry.metadata_sha256}
        item["yanked"] = entry.yanked if entry.yanked else entry.yanked is not None
        if entry.size is not None:
            item["size"] = entry.size
        if entry.upload_time:
            item["upload-time"] = entry.upload_time
        item["provenance"] = None if entry.filename in upstream else provenance_url(entry, base_url)
        if entry.filename in upstream:
            item["_factory-upstream"] = True  # PEP 691 leaves keys with a leading underscore to the index
        elif item["provenance"] is None:
            item["_factory-unsigned"] = True
        files.append(item)
    versions = sorted({e.version for e in entries if e.version}, key=_version_key)
    return _json({**page, "versions": versions, "files": files})
