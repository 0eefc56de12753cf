"""The HTTP client factory uses to talk to indexes: the system's CA store, and file:// too.

pip accepts ``file://`` indexes, so factory does as well: a small httpx transport answers them
from the file system, serving ``index.html`` for a directory the way a static web server would.
"""

from __future__ import annotations

import mimetypes
import netrc
import os
import ssl
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from factory import __version__
from factory.failures import ConfigError

USER_AGENT = f"factory/{__version__}"


class FileTransport(httpx.BaseTransport):
    """Answer ``file://`` requests from the local file system."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = Path(unquote(urlsplit(str(request.url)).path))
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file():
            return httpx.Response(404, request=request)
        content_type = "text/html" if path.suffix == ".html" else mimetypes.guess_type(path.name)[0]
        return httpx.Response(
            200,
            headers={"content-type": content_type or "application/octet-stream"},
            stream=httpx.ByteStream(path.read_bytes()),
            request=request,
        )


def client(timeout: float) -> httpx.Client:
    """A client that trusts the system's CA store (outbound TLS may be intercepted by a site
    proxy whose CA is installed there), honours proxy variables and ``~/.netrc`` (or ``$NETRC``)
    as pip does, and follows redirects. Credentials in a URL win over the netrc."""
    return httpx.Client(
        auth=_netrc_auth(),
        verify=ssl.create_default_context(),
        timeout=timeout,
        follow_redirects=True,
        headers={"user-agent": USER_AGENT},
        mounts={"file://": FileTransport()},
    )


def _netrc_auth() -> httpx.Auth | None:
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    if not path.is_file():
        return None
    try:
        return httpx.NetRCAuth(str(path))
    except (netrc.NetrcParseError, OSError) as exc:
        raise ConfigError(f"{path}: cannot read it as a netrc file ({exc}): fix it, or remove it") from None
