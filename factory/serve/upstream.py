"""The upstream fallback: pages of projects the index lacks, with their file links rewritten to
go through this server (so that what a client downloads is seen, and logged).

A rewritten link carries the upstream URL and an HMAC of it by a per-process secret, so the
server only ever fetches URLs that an upstream page named: it is no open proxy. The link keeps
the file's name last, so a client that appends ``.metadata`` (PEP 658) still reaches the
upstream sidecar.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import quote, unquote, urljoin

import httpx
from mousebender import simple

from factory.index import pages
from factory.index.manifest import FileEntry


class Upstream:
    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.client = client
        self._key = secrets.token_bytes(32)

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

    async def project(self, project: str) -> tuple[int, list[FileEntry]]:
        """(status, files) of an upstream project page, the links rewritten to ours."""
        page_url = urljoin(self.url, f"{project}/")
        try:
            response = await self.client.get(page_url, headers={"accept": simple.ACCEPT_SUPPORTED})
        except httpx.HTTPError:  # unreachable, or a redirect loop
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
            url = urljoin(str(response.url), f["url"]).split("#", 1)[0]
            meta = f.get("core-metadata") or f.get("dist-info-metadata")
            yanked = f.get("yanked", False)
            entries.append(FileEntry(
                filename=f["filename"], project=project, version="", sha256=f.get("hashes", {}).get("sha256", ""),
                size=f.get("size"), requires_python=f.get("requires-python"),
                metadata_sha256=meta.get("sha256") if isinstance(meta, dict) else None,
                upload_time=f.get("upload-time") or "", yanked=(yanked if isinstance(yanked, str) else "") if yanked else None,
                path=self.link(project, url, f["filename"]).lstrip("/"),
            ))
        return 200, sorted(entries, key=lambda e: e.filename)


def render(project: str, entries: list[FileEntry], as_json: bool) -> str:
    """An upstream project's page in our form; its links (``../../upstream/...``, relative to
    ``/simple/<project>/``) lead back to this server."""
    return (pages.project_json if as_json else pages.project_html)(project, entries, None, "")
