"""A small hosted repository for upload tests, on 127.0.0.1, that behaves as the strict ones
do where devpi is lenient: it refuses PEP 740 attestations it cannot verify (400, as the public
index answers uploads from other publishers), answers a file it holds with 400 "File already
exists", and can list uploads late (as Artifactory and Nexus do while they reindex). It keeps
every upload's form fields, for the tests to read."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename


class UploadTarget:
    """Use as a context manager; ``url`` takes uploads, ``simple_url`` lists them."""

    def __init__(self, *, refuse_attestations: bool = False, lag: bool = False,
                 credentials: tuple[str, str] | None = None) -> None:
        self.refuse_attestations, self.lag, self.credentials = refuse_attestations, lag, credentials
        self.files: dict[str, bytes] = {}
        self.uploads: list[dict[str, list[str]]] = []  # every upload's fields, accepted or not
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/legacy/"

    @property
    def simple_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/simple/"

    def __enter__(self) -> UploadTarget:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        target = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: str, content_type: str = "text/plain") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if target.credentials is None:
                    return True
                import base64

                expected = base64.b64encode(":".join(target.credentials).encode()).decode()
                return self.headers.get("Authorization") == f"Basic {expected}"

            def do_GET(self) -> None:  # noqa: N802
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                if parts == ["simple"]:
                    return self._send(200, "<!DOCTYPE html><html><body></body></html>", "text/html")
                if len(parts) != 2 or parts[0] != "simple":
                    return self._send(404, "not found")
                project = canonicalize_name(parts[1])
                with target.lock:
                    files = {} if target.lag else {n: d for n, d in target.files.items() if _project(n) == project}
                if not files:
                    return self._send(404, "not found")
                links = "".join(f'<a href="/files/{html.escape(n)}#sha256={hashlib.sha256(d).hexdigest()}">'
                                f"{html.escape(n)}</a>\n" for n, d in sorted(files.items()))
                self._send(200, f"<!DOCTYPE html><html><body>{links}</body></html>", "text/html")

            def do_POST(self) -> None:  # noqa: N802
                if not self._authorized():
                    return self._send(403, "Invalid or non-existent authentication information.")
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body)
                fields: dict[str, list[str]] = {}
                content, filename = b"", ""
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    if name == "content":
                        content, filename = part.get_payload(decode=True), part.get_filename()
                    else:
                        fields.setdefault(name, []).append(part.get_content())
                fields["_filename"] = [filename]
                with target.lock:
                    target.uploads.append(fields)
                    if target.refuse_attestations and "attestations" in fields:
                        return self._send(400, "Invalid attestations supplied during upload: could not verify the "
                                               "given attestations against any trusted publisher")
                    if hashlib.sha256(content).hexdigest() != fields.get("sha256_digest", [""])[0]:
                        return self._send(400, "The digest supplied does not match a digest calculated from the "
                                               "uploaded file.")
                    if filename in target.files:
                        return self._send(400, "File already exists. See the documentation for more information.")
                    target.files[filename] = content
                self._send(200, "OK")

        return Handler


def _project(filename: str) -> str:
    if filename.endswith(".whl"):
        return parse_wheel_filename(filename)[0]
    return parse_sdist_filename(filename)[0]
