"""A small upstream index for the tests, on 127.0.0.1: PEP 691 JSON and PEP 503 HTML.

It serves the fixture projects it is given. Any other project is redirected to a fallback index
(the one pip on this machine is configured with), so that pip inside a build container finds
build dependencies such as setuptools through it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
#: When the fixture projects were "uploaded" (PEP 700): their build requirements are resolved as of then.
FIXTURE_UPLOADED = "2025-06-01T00:00:00Z"


@dataclasses.dataclass
class Served:
    filename: str
    data: bytes
    declared_sha256: str  # what the page says, which a test may make wrong
    requires_python: str | None = None
    yanked: str | None = None
    missing: bool = False  # listed, but the file answers 404
    upload_time: str = FIXTURE_UPLOADED
    redirect: str | None = None  # the file answers 302 to this URL
    release: threading.Event | None = None  # the file is sent only once this is set (a slow upstream)


class LocalIndex:
    """The index; ``url`` is its simple root. Use as a context manager."""

    def __init__(self, fallback: str | None = None) -> None:
        self.fallback = fallback.rstrip("/") + "/" if fallback else None
        self.projects: dict[str, list[Served]] = {}
        self.html_only: set[str] = set()
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/simple/"

    def add_file(self, project: str, path: Path, *, sha256: str | None = None, **extra: object) -> Served:
        data = path.read_bytes()
        served = Served(path.name, data, sha256 or hashlib.sha256(data).hexdigest(), **extra)  # type: ignore[arg-type]
        self.projects.setdefault(canonicalize_name(project), []).append(served)
        return served

    def __enter__(self) -> LocalIndex:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self) -> None:  # noqa: N802 - uv asks before it reads a wheel's metadata
                self.do_GET()

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                index.requests.append(self.path)
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                if parts[:1] == ["files"] and len(parts) == 2:
                    return self._file(parts[1])
                if parts == ["simple"]:
                    return self._root()
                if parts[:1] == ["simple"] and len(parts) == 2:
                    return self._project(parts[1])
                self._send(404, b"not found", "text/plain")

            def _wants_json(self, project: str | None) -> bool:
                return JSON_TYPE in self.headers.get("Accept", "") and project not in index.html_only

            def _root(self) -> None:
                names = sorted(index.projects)
                if self._wants_json(None):
                    body = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
                    return self._send(200, json.dumps(body).encode(), JSON_TYPE)
                links = "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
                self._send(200, f"<!DOCTYPE html><html><body>{links}</body></html>".encode(), "text/html")

            def _project(self, name: str) -> None:
                project = canonicalize_name(name)
                files = index.projects.get(project)
                if files is None:
                    if index.fallback:
                        return self._send(302, b"", "text/plain", {"Location": f"{index.fallback}{project}/"})
                    return self._send(404, b"not found", "text/plain")
                if self._wants_json(project):
                    entries = []
                    for f in files:
                        entry: dict[str, object] = {"filename": f.filename, "url": f"../../files/{f.filename}",
                                                    "hashes": {"sha256": f.declared_sha256}}
                        if f.requires_python:
                            entry["requires-python"] = f.requires_python
                        if f.yanked is not None:
                            entry["yanked"] = f.yanked or True
                        entry["upload-time"] = f.upload_time
                        entries.append(entry)
                    body = {"meta": {"api-version": "1.1"}, "name": project, "files": entries}
                    return self._send(200, json.dumps(body).encode(), JSON_TYPE)
                links = []
                for f in files:
                    attrs = f'href="../../files/{f.filename}#sha256={f.declared_sha256}"'
                    if f.requires_python:
                        attrs += f' data-requires-python="{html.escape(f.requires_python)}"'
                    if f.yanked is not None:
                        attrs += f' data-yanked="{html.escape(f.yanked)}"'
                    links.append(f"<a {attrs}>{f.filename}</a><br>")
                body = "<!DOCTYPE html><html><body>" + "\n".join(links) + "</body></html>"
                self._send(200, body.encode(), "text/html")

            def _file(self, filename: str) -> None:
                for files in index.projects.values():
                    for f in files:
                        if f.filename == filename and f.redirect:
                            return self._send(302, b"", "text/plain", {"Location": f.redirect})
                        if f.filename == filename and not f.missing:
                            if f.release is not None:
                                f.release.wait()
                            return self._send(200, f.data, "application/octet-stream")
                self._send(404, b"not found", "text/plain")

        return Handler
