"""Render the simple index's pages (PEP 503 HTML) from manifest entries."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from factory.index.manifest import FileEntry

#: PEP 629 API version of the pages; 1.1 covers what PEP 658/714 metadata links need.
API_VERSION = "1.1"


def _page(title: str, body: Iterable[str]) -> str:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
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


def root_html(projects: Iterable[str]) -> str:
    """The root page: one link per (normalized) project name."""
    return _page("Simple index", (f'<a href="{escape(p)}/">{escape(p)}</a><br>' for p in projects))


def file_href(entry: FileEntry) -> str:
    """The link to a file from its project page (``simple/<project>/``), with its hash."""
    return f"../../{entry.path}#sha256={entry.sha256}"


def project_html(project: str, entries: Iterable[FileEntry]) -> str:
    """A project page: one link per file, in the order given (ascending file name)."""
    links = []
    for entry in entries:
        attrs = [f'href="{escape(file_href(entry))}"']
        if entry.requires_python:
            attrs.append(f'data-requires-python="{escape(entry.requires_python)}"')
        if entry.metadata_sha256:
            value = f"sha256={entry.metadata_sha256}"
            # PEP 714's name, and PEP 658's for clients that predate it.
            attrs.append(f'data-core-metadata="{value}" data-dist-info-metadata="{value}"')
        if entry.yanked is not None:
            attrs.append(f'data-yanked="{escape(entry.yanked)}"')
        links.append(f"<a {' '.join(attrs)}>{escape(entry.filename)}</a><br>")
    return _page(f"Links for {project}", links)
