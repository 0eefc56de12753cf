"""The stack's HTTP API: OIDC discovery, keys and tokens; the CA's ``signingCert``; Rekor v1's log API."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import json
import logging
import re
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import serialization

from factory.sigstore_stack.ca import CertificateAuthority
from factory.sigstore_stack.errors import CsrRejected, StackError, TokenRejected
from factory.sigstore_stack.oidc import OidcIssuer
from factory.sigstore_stack.rekor import TransparencyLog

MAX_BODY = 16 * 1024 * 1024
_ENTRY = re.compile(r"/api/v1/log/entries/([0-9a-fA-F]{64}|[0-9a-fA-F]{80})")
_logger = logging.getLogger(__name__)


class BadRequest(StackError):
    """The request is not JSON of the expected shape."""

    status = 400


class NotFound(StackError):
    """No such endpoint."""

    status = 404


@dataclasses.dataclass
class Services:
    """What the HTTP API serves: the stack's base URL and its issuer, CA and log."""

    base_url: str
    oidc: OidcIssuer
    ca: CertificateAuthority
    log: TransparencyLog
    trust_config: dict[str, Any]  # what clients load; also served, to look at: factory pins its own from the state dir
    token_secret: str  # what a client must show to get an identity token


class StackServer(ThreadingHTTPServer):
    """A threading HTTP server that hands ``services`` to its request handlers."""

    daemon_threads = True
    services: Services


class Handler(BaseHTTPRequestHandler):
    """Routes one request to the services; errors are answered as ``{"code": N, "message": ...}``."""

    server: StackServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, keep-alive clients stall ~40 ms on each.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        _logger.debug("%s " + format, self.address_string(), *args)

    def _answer(self, route: Callable[[str, dict[str, list[str]]], tuple[int, Any]]) -> None:
        url = urlsplit(self.path)
        try:
            status, body = route(url.path.rstrip("/") or "/", parse_qs(url.query))
        except StackError as e:
            status, body = e.status, {"code": e.status, "message": str(e)}
        except Exception as e:
            _logger.exception("sigstore stack: %s %s failed", self.command, self.path)
            status, body = 500, {"code": 500, "message": f"internal error: {type(e).__name__}"}
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        if status >= 400:
            # The request body may be unread: the connection cannot carry another request.
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as e:
            raise BadRequest("bad Content-Length") from e
        if not 0 <= length <= MAX_BODY:
            raise BadRequest(f"request body must be 0..{MAX_BODY} bytes")
        try:
            return json.loads(self.rfile.read(length))
        except ValueError as e:
            raise BadRequest(f"request body is not JSON: {e}") from e

    def _get(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        services = self.server.services
        if path in ("/.well-known/openid-configuration", "/oidc/.well-known/openid-configuration"):
            return 200, services.oidc.discovery(services.base_url)
        if path == "/oidc/jwks":
            return 200, services.oidc.jwks()
        if path == "/api/v2/trustBundle":
            root = services.ca.root.public_bytes(serialization.Encoding.PEM).decode()
            return 200, {"chains": [{"certificates": [root]}]}
        if path == "/factory/trust":
            return 200, {"trustConfig": services.trust_config, "issuer": services.oidc.issuer}
        if path == "/api/v1/log":
            return 200, services.log.info()
        if path == "/api/v1/log/publicKey":
            return 200, services.log.public_key_pem()
        if path == "/api/v1/log/entries" and "logIndex" in query:
            try:
                index = int(query["logIndex"][0])
            except ValueError as e:
                raise BadRequest("logIndex must be an integer") from e
            return 200, services.log.entry_at(index)
        if match := _ENTRY.fullmatch(path):
            return 200, services.log.entry(match.group(1))
        raise NotFound(f"no such endpoint: GET {path}")

    def _post(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        services = self.server.services
        request = self._json()
        if not isinstance(request, dict):
            raise BadRequest("the request body must be a JSON object")
        if path == "/oidc/token":
            authorization = self.headers.get("Authorization") or ""
            # No secret (a stack set up by hand) opens nothing: it never matches.
            if not services.token_secret or not hmac.compare_digest(authorization.encode(),
                                                                    f"Bearer {services.token_secret}".encode()):
                raise TokenRejected("a token request needs the stack's secret (token.secret in its state directory)")
            email, lifetime = request.get("email"), request.get("lifetime", 600)
            if not isinstance(email, str) or not isinstance(lifetime, int):
                raise BadRequest('a token request is {"email": "...", "lifetime": seconds (optional)}')
            token = services.oidc.mint(email, lifetime)
            return 200, {"id_token": token, "token_type": "Bearer"}
        if path == "/factory/prove":
            challenge = request.get("challenge")
            try:
                raw = base64.b64decode(challenge, validate=True) if isinstance(challenge, str) else b""
            except binascii.Error:
                raw = b""
            if not 16 <= len(raw) <= 64:
                raise BadRequest('a proof request is {"challenge": base64 of 16 to 64 random bytes}')
            return 200, {"signature": base64.b64encode(services.ca.prove(raw)).decode()}
        if path == "/api/v2/signingCert":
            return 201, self._signing_cert(services, request)
        if path == "/api/v1/log/entries":
            return 201, services.log.add(request)
        if path == "/api/v1/log/entries/retrieve":
            return 200, services.log.retrieve(request)
        raise NotFound(f"no such endpoint: POST {path}")

    def _signing_cert(self, services: Services, request: dict[str, Any]) -> dict[str, Any]:
        authorization = self.headers.get("Authorization") or ""
        token = authorization[7:] if authorization[:7].lower() == "bearer " else None
        token = token or (request.get("credentials") or {}).get("oidcIdentityToken")
        if not isinstance(token, str) or not token:
            raise TokenRejected("no identity token: send it as a Bearer token")
        identity = services.oidc.verify(token.strip())
        csr = request.get("certificateSigningRequest")
        if not isinstance(csr, str):
            raise CsrRejected("certificateSigningRequest (base64 of a PEM CSR) is required")
        try:
            csr_pem = base64.b64decode(csr, validate=True)
        except binascii.Error as e:
            raise CsrRejected("certificateSigningRequest is not base64") from e
        chain = services.ca.issue(csr_pem, identity)
        pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain]
        return {"signedCertificateEmbeddedSct": {"chain": {"certificates": pems}}}
