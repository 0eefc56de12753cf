"""A hosted repository as ``factory upload`` sees it: its simple pages say what it holds (the
truth), and its upload URL takes one file per request, the way twine sends it.

Servers answer a file they hold already differently (devpi 409, pypiserver 409, the public index
400 "File already exists", Nexus 400 "updating asset", Artifactory 403 "overwrite artifact");
``Answer`` sorts their answers the way twine's ``--skip-existing`` does.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import ssl
from pathlib import Path
from urllib.parse import urljoin

import httpx
from mousebender import simple
from packaging.utils import NormalizedName

from factory.failures import FactoryError
from factory.plumbing.net import USER_AGENT
from factory.upload.credentials import Credentials, without_userinfo


class TargetError(FactoryError):
    """The repository cannot be used: unreachable, no simple pages, or credentials refused."""


class Answer(enum.Enum):
    UPLOADED = "uploaded"
    EXISTS = "exists"  # the server holds a file of that name already
    ATTESTATIONS_REFUSED = "attestations-refused"  # it refused the PEP 740 attestations, not the file
    REFUSED = "refused"  # anything else


@dataclasses.dataclass(frozen=True)
class Response:
    answer: Answer
    status: int
    text: str  # what the server said, shortened


def classify(status: int, text: str) -> Answer:
    """What an answer to an upload means."""
    lowered = text.lower()
    if 200 <= status < 300:
        return Answer.UPLOADED
    if status == 409 or (status == 400 and any(s in lowered for s in ("already exist", "updating asset",
                                                                        "already been taken"))) \
            or (status == 403 and "overwrite artifact" in lowered):
        return Answer.EXISTS
    if status in (400, 422) and "attestation" in lowered:
        return Answer.ATTESTATIONS_REFUSED
    return Answer.REFUSED


class Target:
    """The repository at ``upload_url``; its simple pages at ``simple_url`` (found by asking,
    when not given: devpi's ``+simple/``, then ``simple/`` as Artifactory, Nexus, pypiserver
    and Cloudsmith have it). Use as a context manager."""

    def __init__(self, upload_url: str, credentials: Credentials | None, simple_url: str | None = None,
                 timeout: float = 60.0) -> None:
        self.upload_url = without_userinfo(upload_url)
        self.credentials = credentials
        auth = (credentials.username, credentials.password) if credentials else None
        self.client = httpx.Client(verify=ssl.create_default_context(), timeout=timeout, auth=auth,
                                   headers={"user-agent": USER_AGENT}, trust_env=True)
        self.simple_url = simple_url or self._find_simple()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def _get(self, url: str, accept: str) -> httpx.Response:
        try:
            response = self.client.get(url, headers={"accept": accept}, follow_redirects=True)
        except httpx.TransportError as exc:
            raise TargetError(f"cannot reach {url}: {exc}") from None
        if response.status_code in (401, 403):
            raise TargetError(f"{url} refused our credentials ({response.status_code}): "
                              f"{self._credentials_hint()}")
        return response

    def _credentials_hint(self) -> str:
        if self.credentials is None:
            return ("none were given: set FACTORY_UPLOAD_USERNAME and FACTORY_UPLOAD_PASSWORD (or TWINE_USERNAME "
                    "and TWINE_PASSWORD), or add the host to ~/.netrc")
        return f"check the credentials from {self.credentials.source}"

    def _find_simple(self) -> str:
        base = self.upload_url if self.upload_url.endswith("/") else self.upload_url + "/"
        tried = []
        for candidate in (urljoin(base, "+simple/"), urljoin(base, "simple/")):
            response = self._get(candidate, simple.ACCEPT_SUPPORTED)
            if response.status_code == 200:
                return candidate
            tried.append(f"{candidate} ({response.status_code})")
        raise TargetError(f"no simple index found beside {self.upload_url}: tried {', '.join(tried)}; "
                          "give it with --simple-url")

    def listing(self, project: NormalizedName) -> dict[str, str | None]:
        """The files the repository offers for ``project``: file name -> sha256 (None when the
        page gives none); empty when it has no such project."""
        url = urljoin(self.simple_url, f"{project}/")
        response = self._get(url, simple.ACCEPT_SUPPORTED)
        if response.status_code == 404:
            return {}
        if response.status_code != 200:
            raise TargetError(f"{url} answered {response.status_code}")
        content_type = response.headers.get("content-type", "text/html").split(";")[0].strip()
        try:
            details = simple.parse_project_details(response.text, content_type, project)
        except (simple.UnsupportedMIMEType, simple.UnsupportedAPIVersion, ValueError, KeyError) as exc:
            raise TargetError(f"{url} is not a simple index page ({content_type}): {exc}") from None
        return {f["filename"]: (f.get("hashes", {}).get("sha256") or None) for f in details["files"]}

    def upload(self, path: Path, fields: list[tuple[str, str]], attestations: list[object] | None) -> Response:
        """Send one file. Attestations go in the ``attestations`` field (PEP 740) when given."""
        data = list(fields)
        if attestations:
            data.append(("attestations", json.dumps(attestations)))
        try:
            with path.open("rb") as f:
                response = self.client.post(self.upload_url, data=_multidict(data),
                                            files={"content": (path.name, f, "application/octet-stream")})
        except httpx.TransportError as exc:
            return Response(Answer.REFUSED, 0, f"cannot reach {self.upload_url}: {exc}")
        if response.status_code in (401, 403) and classify(response.status_code, response.text) is not Answer.EXISTS:
            raise TargetError(f"{self.upload_url} refused our credentials ({response.status_code}) for the upload of "
                              f"{path.name}: {self._credentials_hint()}")
        if 300 <= response.status_code < 400:  # a POST is not followed: its body would be lost
            return Response(Answer.REFUSED, response.status_code,
                            f"redirected to {response.headers.get('location')}: give the upload URL itself")
        text = (response.reason_phrase + " " + response.text).strip()[:500]
        return Response(classify(response.status_code, text), response.status_code, text)


def _multidict(pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Form fields for httpx: a repeated field as a list of its values, in order."""
    found: dict[str, str | list[str]] = {}
    for key, value in pairs:
        if key in found:
            previous = found[key]
            found[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            found[key] = value
    return found
