"""The status site's pages, as HTML from plain data: no JavaScript, one small stylesheet inline,
every value escaped. Pure functions: the tests read them, ``site`` writes them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from html import escape

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:70rem;padding:0 1rem;color:#1d1d1f}
h1{font-size:1.6rem;margin:.2rem 0 1rem}h2{font-size:1.15rem;margin:1.6rem 0 .4rem}
table{border-collapse:collapse;width:100%;margin:.3rem 0}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f5f5f7}.n{text-align:right}nav a{margin-right:1rem}
.built{color:#0a7d28}.failed,.refused{color:#b3261e}.partial{color:#a15c00}.queued,.waiting,.building{color:#0b57d0}
.reason{font-family:ui-monospace,monospace;font-size:.85rem;white-space:pre-wrap}.muted{color:#6e6e73}
"""


@dataclasses.dataclass(frozen=True)
class Row:
    """One build of a project, as the site shows it."""

    build_id: str
    version: str
    status: str
    finished: str
    targets: tuple[tuple[str, str, str, str], ...]  # (target, status, failure class, reason)
    failure_class: str
    reason: str
    record: str  # link to the record (JSON)
    log: str | None  # link to the whole log, if the build left one
    provenance: tuple[tuple[str, str], ...]  # (wheel, link to its provenance)


def _page(title: str, body: Sequence[str], root: str) -> str:
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f'<nav><a href="{root}index.html">status</a><a href="{root}../simple/">the index</a></nav>',
        f"<h1>{escape(title)}</h1>", *body, "</body>", "</html>", ""])


def _state(value: str) -> str:
    return f'<span class="{escape(value)}">{escape(value)}</span>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> str:
    numeric = set(numeric)
    head = "".join(f'<th{" class=n" if i in numeric else ""}>{escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{c}</td>' for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _project_link(project: str, root: str) -> str:
    return f'<a href="{root}projects/{escape(project)}.html">{escape(project)}</a>'


def overview(counts: dict[str, int], wanted: Sequence[tuple[str, str, int, str]],
             building: Sequence[tuple[str, str, str]], waiting: Sequence[tuple[str, str]],
             recent: Sequence[tuple[str, str, str, str, str]], failures: Sequence[tuple[str, str, str, str]],
             coverage: dict[str, tuple[int, int]], missing: Sequence[tuple[str, int, list[str]]], updated: str) -> str:
    """The front page. ``wanted``: (request, project, weight, why); ``building``: (request,
    project, since); ``waiting``: (request, for what); ``recent``: (project, version, status,
    finished, build id); ``failures``: (request, class, reason, when); ``coverage``: target ->
    (projects served, projects); ``missing``: (target, misses, projects)."""
    body = [f'<p class="muted">updated {escape(updated)}</p>', "<h2>The queue</h2>",
            _table(["state", "requests"], ([_state(s), str(n)] for s, n in counts.items()), numeric=[1])]
    if building:
        body += ["<h2>Building now</h2>",
                 _table(["request", "since"], ([_project_link(p, "") + escape(r[len(p):]), escape(t)]
                                               for r, p, t in building))]
    if wanted:
        body += ["<h2>Most wanted</h2>",
                 _table(["request", "weight", "why"], ([_project_link(p, "") + escape(r[len(p):]), f"{w}", escape(why)]
                                                       for r, p, w, why in wanted), numeric=[1])]
    if waiting:
        body += ["<h2>Waiting for build dependencies</h2>",
                 _table(["request", "waits for"], ([escape(r), escape(d)] for r, d in waiting))]
    if recent:
        body += ["<h2>Recent builds</h2>",
                 _table(["project", "version", "status", "finished"],
                        ([_project_link(p, ""), escape(v), _state(s), escape(f)] for p, v, s, f, _ in recent))]
    if failures:
        body += ["<h2>Recent failures</h2>",
                 _table(["request", "class", "reason", "when"],
                        ([escape(r), escape(c), f'<span class="reason">{escape(why)}</span>', escape(w)]
                         for r, c, why, w in failures))]
    if coverage:
        body += ["<h2>Coverage by target</h2>",
                 _table(["target", "projects with a wheel for it", "of"],
                        ([escape(t), str(n), str(total)] for t, (n, total) in coverage.items()), numeric=[1, 2])]
    if missing:
        body += ["<h2>Targets clients missed</h2>",
                 _table(["target", "misses", "projects"],
                        ([escape(t), str(n), escape(", ".join(p[:8]))] for t, n, p in missing), numeric=[1])]
    return _page("factory status", body, "")


def project(name: str, versions: Sequence[tuple[str, Sequence[tuple[str, str]]]], builds: Sequence[Row],
            updated: str) -> str:
    """A project's page: the versions the index has and the targets they serve; each build, its
    targets' outcomes and reasons, and links to its record, its log and its provenance."""
    body = [f'<p class="muted">updated {escape(updated)}</p>', "<h2>In the index</h2>"]
    if versions:
        body.append(_table(["version", "targets served"],
                           ([escape(v), escape(", ".join(t for t, _ in targets)) or '<span class="muted">none</span>']
                            for v, targets in versions)))
    else:
        body.append('<p class="muted">nothing published yet</p>')
    body.append("<h2>Builds</h2>")
    for row in builds:
        links = [f'<a href="{escape(row.record)}">record</a>']
        if row.log:
            links.append(f'<a href="{escape(row.log)}">build log</a>')
        links += [f'<a href="{escape(url)}">provenance of {escape(wheel)}</a>' for wheel, url in row.provenance]
        body.append(f"<h3>{escape(row.version or '?')}: {_state(row.status)} "
                    f'<span class="muted">{escape(row.finished)} · build {escape(row.build_id)}</span></h3>')
        if row.failure_class:
            body.append(f'<p><b>{escape(row.failure_class)}</b>: <span class="reason">{escape(row.reason)}</span></p>')
        if row.targets:
            body.append(_table(["target", "status", "class", "reason"],
                               ([escape(t), _state(s), escape(c), f'<span class="reason">{escape(r)}</span>']
                                for t, s, c, r in row.targets)))
        body.append("<p>" + " · ".join(links) + "</p>")
    if not builds:
        body.append('<p class="muted">no build yet</p>')
    return _page(name, body, "../")
