"""The upstream fallback: pages of projects the index lacks, with their file links rewritten to
go through this server (so that what a client downloads is seen, and logged).

A rewritten link carries the upstream URL and an HMAC of it by a key kept in the state
directory (so links in lock files outlive a restart), and the server only ever fetches URLs
that an upstream page named: it is no open proxy. Redirects are followed only where they stay
on the upstream's own host or the file's, never elsewhere (a loopback service, say). What an
upstream page says is checked before it is passed on: hashes must be hex digests, file names
must name a version. The link keeps the file's name last, so a client that appends
``.metadata`` (PEP 658) still reaches the upstream sidecar.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import httpx
from mousebender import simple
from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

from factory.failures import ConfigError
from factory.index import pages
from factory.index.manifest import FileEntry

#: Redirects followed (on the allowed hosts) before the upstream counts as failing.
MAX_REDIRECTS = 5
KEY_BYTES = 32
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class UpstreamRefused(Exception):
    """The upstream redirected off its own host, or too many times."""


def load_or_create_key(path: Path) -> bytes:
    """The key that signs fallback links, created (mode 0600) at the first start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise ConfigError(f"{path}: not a fallback link key ({len(key)} bytes, not {KEY_BYTES}): remove it and "
                              "restart (links handed out before stop working)") from None
        return key
    key = secrets.token_bytes(KEY_BYTES)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _sha256(value: object) -> str | None:
    """A sha256 an upstream page gave, if it is one (lower-case hex)."""
    return value.lower() if isinstance(value, str) and _SHA256.fullmatch(value) else None


def _time(value: object) -> str:
    """An upload time an upstream page gave, if it is an ISO 8601 time."""
    if not isinstance(value, str):
        return ""
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return value


def _version(filename: str) -> str:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return ""


class Upstream:
    def __init__(self, url: str, client: httpx.AsyncClient, key: bytes) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.client = client
        self._key = key

    def _sign(self, url: str) -> str:
        return hmac.new(self._key, url.encode(), hashlib.sha256).hexdigest()[:32]

    def link(self, project: str, url: str, filename: str) -> str:
        """Our path for an upstream file."""
        encoded = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
        return f"/upstream/{project}/{self._sign(url)}/{encoded}/{quote(filename)}"

    def resolve(self, signature: str, encoded: str, filename: str) -> str | None:
        """The upstream URL behind one of our links (None if it is not one we made)."""
        try:
            url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(self._sign(url), signature):
            return None
        # The link names a file; `.metadata` after it names that file's sidecar.
        name = unquote(url.split("#", 1)[0].rsplit("/", 1)[-1])
        if filename.endswith(".metadata") and not url.endswith(".metadata"):
            return url + ".metadata" if name + ".metadata" == filename else None
        return url if name == filename else None

    async def get(self, url: str, headers: dict[str, str], stream: bool = False) -> httpx.Response:
        """GET ``url``, following redirects only on the upstream's host or ``url``'s own.

        Raises ``UpstreamRefused`` for any other redirect, and httpx's errors."""
        allowed = {_origin(self.url), _origin(url)}
        for _ in range(MAX_REDIRECTS + 1):
            response = await self.client.send(self.client.build_request("GET", url, headers=headers), stream=stream,
                                              follow_redirects=False)
            if not response.is_redirect:
                return response
            await response.aclose()
            target = urljoin(url, response.headers["location"])
            if _origin(target) not in allowed:
                raise UpstreamRefused(f"{url} redirects off the upstream's host, to {_origin(target)[1] or target}")
            url = target
        raise UpstreamRefused(f"more than {MAX_REDIRECTS} redirects from {url}")

    async def project(self, project: str) -> tuple[int, list[FileEntry]]:
        """(status, files) of an upstream project page, the links rewritten to ours."""
        page_url = urljoin(self.url, f"{project}/")
        try:
            response = await self.get(page_url, {"accept": simple.ACCEPT_SUPPORTED})
        except (httpx.HTTPError, UpstreamRefused):  # unreachable, a redirect loop, or off its host
            return 502, []
        if response.status_code != 200:
            return response.status_code, []
        content_type = response.headers.get("content-type", "text/html").split(";")[0].strip()
        try:
            details = simple.parse_project_details(response.text, content_type, project)
        except (simple.UnsupportedMIMEType, simple.UnsupportedAPIVersion, ValueError, KeyError):
            return 502, []
        entries = []
        for f in details["files"]:
            version = _version(f["filename"])
            if not version or "/" in f["filename"]:  # not a distribution file: nothing a client could install
                continue
            url = urljoin(str(response.url), f["url"]).split("#", 1)[0]
            meta = f.get("core-metadata") or f.get("dist-info-metadata")
            yanked = f.get("yanked", False)
            requires_python = f.get("requires-python")
            entries.append(FileEntry(
                filename=f["filename"], project=project, version=version,
                sha256=_sha256(f.get("hashes", {}).get("sha256")) or "",
                size=f.get("size") if isinstance(f.get("size"), int) else None,
                requires_python=requires_python if isinstance(requires_python, str) else None,
                metadata_sha256=_sha256(meta.get("sha256")) if isinstance(meta, dict) else None,
                upload_time=_time(f.get("upload-time")),
                yanked=(yanked if isinstance(yanked, str) else "") if yanked else None,
                path=self.link(project, url, f["filename"]).lstrip("/"),
            ))
        return 200, sorted(entries, key=lambda e: e.filename)


def render(project: str, entries: list[FileEntry], as_json: bool) -> str:
    """An upstream project's page in our form; its links (``../../upstream/...``, relative to
    ``/simple/<project>/``) lead back to this server."""
    return (pages.project_json if as_json else pages.project_html)(project, entries, None, "",
                                                                   upstream={e.filename for e in entries})
