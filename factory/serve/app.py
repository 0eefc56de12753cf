"""The HTTP application (Starlette) that ``factory serve`` runs under uvicorn.

- ``/simple/`` and ``/simple/<project>/``: the pages, by content negotiation (PEP 691:
  ``application/vnd.pypi.simple.v1+json`` or HTML), with ``Vary: Accept``, ETag and
  Last-Modified. A project the index lacks is fetched from the upstream (unless the index is
  closed) with its links rewritten to ``/upstream/...``. A project the index has is served from
  the index only (``fallback = "project"``), or, per version (``fallback = "version"``), with the
  upstream's files of the versions it lacks beside its own, marked as the upstream's. Either way
  each miss is logged, and put in the ledger as it happens (``sink.py``). A pip or uv client for
  whose Python and platform the newest release has no file is a ``no-compatible-file`` miss,
  with the target it needed.
  Provenance links that the pages hold relative to themselves are made absolute against the
  request's URL (PEP 740 wants fully qualified URLs).
- ``/files/...``: the index's files and their sidecars; no directory listing, and no path can
  leave the index directory.
- ``/upstream/...``: files of upstream projects, fetched for the client and logged as misses.
A name that is not a project name (PEP 508, at most 200 characters) is not found.
Every response asks for credentials first when a users file is configured (see ``RequireAuth``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import hashlib
import json
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import httpx
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from factory.config import Config
from factory.index.manifest import Manifest
from factory.index.pages import HTML_TYPE, JSON_TYPE, absolute_provenance, project_html, project_json
from factory.plumbing.net import USER_AGENT
from factory.queue.misses import Miss, classify_path, valid_name
from factory.serve.auth import MAX_HASHING, Credentials, Throttle, Users, credentials
from factory.serve.clients import has_compatible
from factory.serve.clients import parse as parse_client
from factory.serve.misslog import MissLog
from factory.serve.proxy import TrustedProxies, networks
from factory.serve.sink import LedgerSink
from factory.serve.upstream import KEY_BYTES, Upstream, UpstreamRefused, load_or_create_key, render
from factory.targets import every_target

#: The longest path component looked up in the index (the file system's limit).
MAX_PART = 255
#: Types of what /files/ serves, by how the name ends.
FILE_TYPES = {
    ".whl": "application/zip",
    ".tar.gz": "application/gzip",
    ".zip": "application/zip",
    ".metadata": "text/plain; charset=utf-8",
    ".provenance": "application/vnd.pypi.integrity.v1+json",
    ".sigstore.json": "application/json",
}


#: How a project the index has falls back on the upstream.
FALLBACK_MODES = ("project", "version")


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """What the server needs, resolved once."""

    index_dir: Path
    miss_log: Path
    upstream: str | None  # None: a closed index, no fallback
    users: Users | None  # None: no authentication
    http_timeout: float = 60.0
    upstream_key: Path | None = None  # signs fallback links; None: a key for this process only
    fallback: str = "project"  # or "version": the upstream's files of the versions the index lacks too
    queue: Config | None = None  # the ledger misses go into as they happen; None: the miss log only
    buildable: tuple[str, ...] = ()  # the targets factory builds for (cp311-x86_64, ...)
    status_dir: Path | None = None  # the status site, served at /status/
    trusted_proxies: tuple[str, ...] = ()  # whose X-Forwarded-For / X-Forwarded-User-Agent are believed


def settings_for(config: Config, users: Users | None, fallback: str | None = None,
                 miss_log: Path | None = None, trusted_proxies: tuple[str, ...] = ()) -> ServeSettings:
    """The server's settings from factory's config (``fallback`` and ``trusted_proxies``, when
    given, override the config's)."""
    mode = fallback or config.fallback
    return ServeSettings(
        index_dir=config.index_dir, miss_log=miss_log or config.state_dir / "misses.jsonl",
        upstream=None if mode == "none" else config.upstream, users=users, http_timeout=config.http_timeout,
        upstream_key=config.state_dir / "serve" / "upstream.key", fallback="project" if mode == "none" else mode,
        queue=config if config.queue_misses else None,
        buildable=tuple(str(t) for t in every_target(config.archs, config.pythons)), status_dir=config.status_dir,
        trusted_proxies=tuple(trusted_proxies or config.trusted_proxies),
    )


def _made_page(request: Request, body: str, as_json: bool) -> Response:
    """A page made for this request (from the upstream's): its ETag is its content's hash, what
    repository managers cache by, as there is no file time to give."""
    headers = {"Vary": "Accept", "Cache-Control": "max-age=60",
               "ETag": '"' + hashlib.sha256(body.encode()).hexdigest()[:20] + '"'}
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=JSON_TYPE if as_json else "text/html; charset=utf-8", headers=headers)


def wants_json(request: Request) -> bool:
    """PEP 691 negotiation: the JSON form when the client ranks it above HTML."""
    best_json = best_html = -1.0
    for part in request.headers.get("accept", "").split(","):
        fields = [f.strip() for f in part.split(";")]
        kind, quality = fields[0].lower(), 1.0
        for f in fields[1:]:
            if f.startswith("q="):
                try:
                    quality = float(f[2:])
                except ValueError:
                    quality = 0.0
        if kind in (JSON_TYPE, "application/vnd.pypi.simple.latest+json"):
            best_json = max(best_json, quality)
        elif kind in (HTML_TYPE, "application/vnd.pypi.simple.latest+html", "text/html", "*/*"):
            best_html = max(best_html, quality)
    return best_json > 0 and best_json >= best_html


def _validators(path: Path, salt: str = "") -> tuple[str, str]:
    stat = path.stat()
    key = f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}:{salt}"
    etag = '"' + hashlib.sha256(key.encode()).hexdigest()[:20] + '"'
    return etag, email.utils.formatdate(stat.st_mtime, usegmt=True)


def _static(request: Request, path: Path, media_type: str, vary: bool = False) -> Response:
    etag, modified = _validators(path)
    headers = {"ETag": etag, "Last-Modified": modified, "Cache-Control": "max-age=60"}
    if vary:
        headers["Vary"] = "Accept"
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)


def _page(request: Request, path: Path, as_json: bool) -> Response:
    """A page of the index, its relative provenance links made absolute for this request."""
    text = path.read_text()
    if ('"provenance":"../' if as_json else 'data-provenance="../') not in text:  # none relative: as it is
        return _static(request, path, JSON_TYPE if as_json else "text/html; charset=utf-8", vary=True)
    url = str(request.url.replace(query="", fragment=""))
    etag, modified = _validators(path, url)
    headers = {"ETag": etag, "Last-Modified": modified, "Cache-Control": "max-age=60", "Vary": "Accept"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(absolute_provenance(text, as_json, url), headers=headers,
                    media_type=JSON_TYPE if as_json else "text/html; charset=utf-8")


def _safe_parts(raw: str) -> list[str] | None:
    """Path components that stay inside a directory, or None (encoded or not: no ``..``, no
    absolute path, no backslash, no NUL, no hidden file)."""
    text = unquote(raw)
    if "\\" in text or "\0" in text or text.startswith("/"):
        return None
    parts = [p for p in text.split("/") if p]
    if any(p in (".", "..") or p.startswith(".") or len(p.encode()) > MAX_PART for p in parts):
        return None
    return parts


def create_app(settings: ServeSettings) -> Starlette:
    simple_dir = (settings.index_dir / "simple").resolve()
    files_dir = (settings.index_dir / "files").resolve()
    log = MissLog(settings.miss_log)
    sink = LedgerSink(settings.queue, settings.buildable, settings.miss_log.with_name("misses-unqueued.jsonl")) \
        if settings.queue is not None else None
    pages_seen = _PageFiles()
    upstream_pages = _Recent(seconds=60.0)  # per-version fallback asks the upstream at most once a minute
    # Redirects are followed by Upstream.get, only where they stay on the upstream's hosts.
    client = httpx.AsyncClient(timeout=settings.http_timeout, follow_redirects=False, headers={"user-agent": USER_AGENT})
    key = load_or_create_key(settings.upstream_key) if settings.upstream_key else secrets.token_bytes(KEY_BYTES)
    upstream = Upstream(settings.upstream, client, key) if settings.upstream else None

    def miss(request: Request, kind: str, project: str, status: int, filename: str | None = None,
             version: str | None = None, target: str | None = None, tag: str | None = None) -> None:
        user_agent = request.headers.get("user-agent", "")
        client = request.client.host if request.client else ""
        log.write(kind, project, status, user_agent, client, filename, version, target, tag, queued=sink is not None)
        if sink is not None:
            sink.put(Miss(time.time(), kind, canonicalize_name(project), version, client or user_agent, filename, target))

    def check_compatible(request: Request, name: str, directory: Path) -> None:
        """A pip or uv client for whose Python and platform the newest release has no wheel:
        a miss, with the target it needed."""
        client = parse_client(request.headers.get("user-agent", ""))
        if client is None:
            return
        newest = pages_seen.newest(directory / "index.json")
        if newest is not None and not has_compatible(client, newest[1], newest[2]):
            miss(request, "no-compatible-file", name, 200, version=newest[0], target=client.target,
                 tag=client.best_tag)

    def page(request: Request, directory: Path) -> Response:
        as_json = wants_json(request)
        return _page(request, directory / ("index.json" if as_json else "index.html"), as_json)

    async def root(request: Request) -> Response:
        if not (simple_dir / "index.html").is_file():
            return PlainTextResponse("the index is empty", status_code=404)
        return page(request, simple_dir)

    async def project(request: Request) -> Response:
        raw = request.path_params["project"]
        if not valid_name(raw):
            return PlainTextResponse("not a project name", status_code=404)
        name = canonicalize_name(raw)
        if name != raw:  # PEP 503: one URL per project
            return RedirectResponse(f"/simple/{name}/", status_code=301)
        directory = simple_dir / name
        if (directory / "index.html").is_file():
            check_compatible(request, name, directory)
            if upstream is not None and settings.fallback == "version":
                return await with_upstream_versions(request, name, directory)
            return page(request, directory)
        if upstream is None:
            miss(request, "project", name, 404)
            return PlainTextResponse(f"{name} is not in this index", status_code=404)
        status, entries = await upstream.project(name)
        miss(request, "project", name, status)
        if status != 200:
            return PlainTextResponse(f"{name}: the upstream answered {status}", status_code=404 if status == 404 else 502)
        as_json = wants_json(request)
        return _made_page(request, render(name, entries, as_json), as_json)

    async def with_upstream_versions(request: Request, name: str, directory: Path) -> Response:
        """The project's own files, and the upstream's of the versions the index lacks."""
        assert upstream is not None
        status, theirs = await upstream_pages.get(name, lambda: upstream.project(name))
        ours_page = json.loads((directory / "index.json").read_text())
        with Manifest.of(settings.index_dir) as manifest:
            ours, project_status = manifest.files(name), manifest.status(name)
        have = {_normal(v) for v in ours_page.get("versions", [])}
        extra = [e for e in theirs if _normal(e.version) not in have] if status == 200 else []
        entries = sorted([*ours, *extra], key=lambda e: e.filename)
        as_json = wants_json(request)
        render_page = project_json if as_json else project_html
        text = render_page(name, entries, project_status, "", upstream={e.filename for e in extra})
        return _made_page(request, absolute_provenance(text, as_json, str(request.url.replace(query="", fragment=""))),
                          as_json)

    async def files(request: Request) -> Response:
        parts = _safe_parts(request.path_params["path"])
        if parts is None:
            return PlainTextResponse("bad path", status_code=400)
        path = files_dir.joinpath(*parts)
        try:
            here = path.is_file() and path.resolve().is_relative_to(files_dir)
        except OSError:  # a path longer than the file system allows: not one of ours
            here = False
        if here:
            kind = next((t for end, t in FILE_TYPES.items() if path.name.endswith(end)), "application/octet-stream")
            return _static(request, path, kind)
        if parts and (found := classify_path(parts[-1])) is not None:  # a file we do not have: a miss
            miss(request, found[0], found[1], 404, found[3], found[2])
        return PlainTextResponse("not found", status_code=404)

    async def upstream_file(request: Request) -> Response:
        p = request.path_params
        url = upstream.resolve(p["signature"], p["encoded"], p["filename"]) if upstream else None
        if url is None:
            return PlainTextResponse("not found", status_code=404)
        found = classify_path(p["filename"])
        kind, project, version = (found[0], found[1], found[2]) if found else ("file", p["project"], None)
        try:
            # The bytes must reach the client as the upstream hashed them: no compressed pass-through.
            response = await upstream.get(url, {"Accept-Encoding": "identity"}, stream=True)  # type: ignore[union-attr]
        except (httpx.HTTPError, UpstreamRefused) as exc:
            miss(request, kind, project, 502, p["filename"], version)
            return PlainTextResponse(f"the upstream failed: {type(exc).__name__}", status_code=502)
        miss(request, kind, project, response.status_code, p["filename"], version)
        if response.status_code != 200:
            await response.aclose()
            return PlainTextResponse(f"the upstream answered {response.status_code}", status_code=502)
        headers = {k: v for k, v in response.headers.items() if k.lower() in ("content-length", "etag", "last-modified")}
        return StreamingResponse(response.aiter_raw(), media_type=response.headers.get("content-type"),
                                 headers=headers, background=_closer(response))

    async def status(request: Request) -> Response:
        """The status site, under the same auth as the index."""
        if settings.status_dir is None:
            return PlainTextResponse("no status site", status_code=404)
        parts = _safe_parts(request.path_params.get("path", ""))
        if parts is None:
            return PlainTextResponse("bad path", status_code=400)
        root = settings.status_dir.resolve()
        path = root.joinpath(*parts)
        if path.is_dir():
            path = path / "index.html"
        try:
            here = path.is_file() and path.resolve().is_relative_to(root)
        except OSError:
            here = False
        if not here:
            return PlainTextResponse("not found", status_code=404)
        kind = {".html": "text/html; charset=utf-8", ".json": "application/json",
                ".log": "text/plain; charset=utf-8"}.get(path.suffix, "application/octet-stream")
        return _static(request, path, kind)

    async def not_found(request: Request) -> Response:
        return PlainTextResponse("not found", status_code=404)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()
            if sink is not None:
                sink.close()
            log.close()

    routes = [
        Route("/simple/", root),
        Route("/simple/{project}/", project),
        Route("/simple/{project}", lambda r: RedirectResponse(f"/simple/{r.path_params['project']}/", 301)
              if valid_name(r.path_params["project"]) else PlainTextResponse("not found", status_code=404)),
        Route("/files/{path:path}", files),
        Route("/status/", status),
        Route("/status/{path:path}", status),
        Route("/status", lambda r: RedirectResponse("/status/", 301)),
        Route("/upstream/{project}/{signature}/{encoded}/{filename}", upstream_file),
        Route("/{path:path}", not_found),
    ]
    middleware = [Middleware(RequireAuth, users=settings.users)] if settings.users is not None else []
    if settings.trusted_proxies:  # outermost: auth, the miss log and the access log all see the client
        middleware.insert(0, Middleware(TrustedProxies, trusted=networks(settings.trusted_proxies)))
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


class RequireAuth:
    """ASGI middleware: every request must carry credentials the users file accepts.

    Credentials verified before pass at once. Others are checked one at a time per client, in
    threads of their own (PBKDF2 takes a while by design, and must not starve the file serving
    of the shared pool), at most ``MAX_HASHING`` at once; a client whose failures back off is
    answered 429 without any hashing (see ``auth``)."""

    def __init__(self, app: ASGIApp, users: Users, throttle: Throttle | None = None) -> None:
        self.app, self.users = app, users
        self.throttle = throttle or Throttle()
        self._clients: dict[str, anyio.Lock] = {}
        self._limiter: anyio.CapacityLimiter | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"authorization")
            found = credentials(header.decode("latin-1") if header else None)
            client = scope["client"][0] if scope.get("client") else ""
            retry = 0.0
            if found is None:
                allowed = False
            elif self.users.known(found):
                allowed = True
            else:
                allowed, retry = await self._check(found, client)
            if not allowed:
                if retry:
                    response = PlainTextResponse("too many failed logins: try again later", status_code=429,
                                                 headers={"Retry-After": str(math.ceil(retry))})
                else:
                    response = PlainTextResponse("credentials required", status_code=401,
                                                 headers={"WWW-Authenticate": 'Basic realm="factory", charset="UTF-8"'})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _check(self, found: Credentials, client: str) -> tuple[bool, float]:
        """(allowed, seconds to wait before trying again) for credentials not verified before."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(MAX_HASHING)
        lock = self._clients.setdefault(client, anyio.Lock())
        try:
            async with lock:  # a client's attempts one at a time: its failures count before its next try
                if self.users.known(found):  # verified while this one waited (uv asks in parallel)
                    return True, 0.0
                wait = self.throttle.wait(client, time.monotonic())
                if wait > 0:
                    return False, wait
                ok = await anyio.to_thread.run_sync(self.users.check, found, limiter=self._limiter)
                if ok:
                    self.throttle.succeeded(client)
                else:
                    self.throttle.failed(client, time.monotonic())
                return ok, 0.0
        finally:
            if not lock.locked() and not self.throttle.tracks(client):
                self._clients.pop(client, None)
            if len(self._clients) > self.throttle.clients:  # clients the throttle forgot: their locks too
                self._clients = {c: k for c, k in self._clients.items() if k.locked() or self.throttle.tracks(c)}


def _normal(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion:
        return version


class _PageFiles:
    """The newest release of each project page, read once per version of the page."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[int, tuple[str, list[str], dict[str, str | None]] | None]] = {}

    def newest(self, path: Path) -> tuple[str, list[str], dict[str, str | None]] | None:
        """(version, file names, file name -> requires-python) of the newest release on a page."""
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return None
        known = self._seen.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        found = None
        try:
            data = json.loads(path.read_text())
            versions = sorted((Version(v) for v in data.get("versions", []) if v), reverse=True)
            if versions:
                files = [f for f in data["files"] if _file_version(f["filename"]) == versions[0] and not f.get("yanked")]
                found = (str(versions[0]), [f["filename"] for f in files],
                         {f["filename"]: f.get("requires-python") for f in files})
        except (OSError, ValueError, KeyError, InvalidVersion):
            found = None
        self._seen[path] = (stamp, found)
        return found


def _file_version(filename: str) -> Version | None:
    found = classify_path(filename)
    try:
        return Version(found[2]) if found and found[2] else None
    except InvalidVersion:
        return None


class _Recent:
    """Answers kept for a while (the upstream's project pages, for the per-version fallback)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._kept: dict[str, tuple[float, Any]] = {}

    async def get(self, key: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and now - kept[0] < self.seconds:
            return kept[1]
        value = await fetch()
        self._kept[key] = (now, value)
        if len(self._kept) > 10_000:
            self._kept = {k: v for k, v in self._kept.items() if now - v[0] < self.seconds}
        return value


def _closer(response: httpx.Response) -> BackgroundTask:
    return BackgroundTask(response.aclose)
