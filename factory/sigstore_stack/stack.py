"""The whole local Sigstore stack on one HTTP server: start, stop, serve until signalled, fetch tokens.

State directory layout (everything a restart needs; keys are readable by the owner only)::

    keys/{oidc,ca,ct,rekor}.pem   the issuer's, CA's, CT log's and Rekor log's P-256 keys
    ca.crt                        the CA's self-signed root
    stack.json                    the issuer URL and the log's tree ID, fixed at the first start
    rekor/entries.jsonl           the transparency log
    trust_config.json             the client trust config, rewritten at every start (the URL may change)
    running.json                  where the stack that runs on the directory listens (gone when it stops)
    lock                          held while a stack runs on the directory

Clients that share the state directory pin its trust config and find the stack through
``running.json`` (``client.py``): each state directory's stack listens on a port of its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from factory.plumbing.files import write_text
from factory.sigstore_stack.ca import CertificateAuthority, load_or_create_root
from factory.sigstore_stack.client import MIN_SECRET, RUNNING
from factory.sigstore_stack.errors import StackError, StackNotStarted, StateDirBusy, StateDirCorrupt
from factory.sigstore_stack.handler import Handler, Services, StackServer
from factory.sigstore_stack.keys import load_or_create_key
from factory.sigstore_stack.oidc import OidcIssuer
from factory.sigstore_stack.rekor import TransparencyLog
from factory.sigstore_stack.trust import client_trust_config, write_trust_config

LOG_NAME = "factory-sigstore"


class _StackServerV6(StackServer):
    address_family = socket.AF_INET6


class LocalSigstore:
    """An OIDC issuer, a Fulcio-like CA and a Rekor v1 log on ``host``:``port`` (0 picks a free port),
    keeping keys and log in ``state_dir``. Use as a context manager, or call ``start`` and ``stop``."""

    def __init__(self, state_dir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port
        self._server: StackServer | None = None
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None

    def __enter__(self) -> LocalSigstore:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL of every service, e.g. ``http://127.0.0.1:PORT``."""
        return self._services().base_url

    @property
    def issuer(self) -> str:
        """The OIDC issuer URL: the ``iss`` of its tokens and the issuer in the certificates."""
        return self._services().oidc.issuer

    @property
    def token_secret_path(self) -> Path:
        """The secret a client must present to get an identity token over HTTP (mode 0600): what
        listens on 127.0.0.1 is reachable by every process on the host, build containers on the
        host network included; this file is not."""
        return self.state_dir / "token.secret"

    @property
    def trust_config_path(self) -> Path:
        """The client trust config for this stack (``--trust-config`` for the sigstore CLI)."""
        return self.state_dir / "trust_config.json"

    def identity_token(self, email: str = "factory@localhost", lifetime: int = 600) -> str:
        """A signed identity token for ``email``, valid for ``lifetime`` seconds."""
        return self._services().oidc.mint(email, lifetime)

    def _services(self) -> Services:
        if self._server is None:
            raise StackNotStarted("the sigstore stack is not running")
        return self._server.services

    def start(self) -> None:
        """Load or create the state, bind the port, write the trust config and serve in a thread.

        Raises ``StateDirBusy`` if another stack runs on the same state directory."""
        if self._server is not None:
            raise StackError("the sigstore stack is already running")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_state_dir()
        try:
            self._server = self._bind()
            url = self._url(self._server.server_port)
            meta = self._meta(url)
            keys = self.state_dir / "keys"
            ca_key = load_or_create_key(keys / "ca.pem")
            ct_key = load_or_create_key(keys / "ct.pem")
            rekor_key = load_or_create_key(keys / "rekor.pem")
            ca = CertificateAuthority(ca_key, load_or_create_root(self.state_dir / "ca.crt", ca_key), ct_key)
            log = TransparencyLog(self.state_dir / "rekor", rekor_key, origin=f"{LOG_NAME} - {meta['treeId']}",
                                  name=LOG_NAME)
            secret = self._token_secret()
            trust = client_trust_config(base_url=url, oidc_url=f"{url}/oidc", root=ca.root,
                                        rekor_key=rekor_key.public_key(), ct_key=ct_key.public_key())
            self._server.services = Services(url, OidcIssuer(load_or_create_key(keys / "oidc.pem"), meta["issuer"]),
                                             ca, log, trust, secret)
            write_trust_config(self.trust_config_path, trust)
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="sigstore-stack", daemon=True)
        self._thread.start()
        # Last: who finds it answers at once.
        write_text(self.state_dir / RUNNING, json.dumps({"url": url, "pid": os.getpid()}) + "\n")

    def stop(self) -> None:
        """Stop serving and release the state directory; a no-op if not running."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None and self._lock_fd is not None:
            (self.state_dir / RUNNING).unlink(missing_ok=True)
        if server is not None:
            if thread is not None:
                server.shutdown()
                thread.join()
            server.server_close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _token_secret(self) -> str:
        path = self.token_secret_path
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
        secret = path.read_text().strip()
        if len(secret) < MIN_SECRET:  # an empty secret would hand a token to `Authorization: Bearer `
            raise StateDirCorrupt(f"{path} holds {'no' if not secret else 'too short a'} secret (at least {MIN_SECRET} "
                                  "characters): remove the file and start the stack again to make a new one")
        return secret

    def _lock_state_dir(self) -> None:
        fd = os.open(self.state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateDirBusy(f"another sigstore stack is running on {self.state_dir}") from None
        self._lock_fd = fd

    def _bind(self) -> StackServer:
        server_class = _StackServerV6 if ":" in self.host else StackServer
        return server_class((self.host, self.port), Handler)

    def _url(self, port: int) -> str:
        return f"http://[{self.host}]:{port}" if ":" in self.host else f"http://{self.host}:{port}"

    def _meta(self, url: str) -> dict[str, Any]:
        """``stack.json``, created at the first start. The issuer stays fixed so that certificates from
        before a restart on another port still match the issuer given to verifiers."""
        path = self.state_dir / "stack.json"
        if path.exists():
            meta: dict[str, Any] = json.loads(path.read_text())
            return meta
        meta = {"issuer": f"{url}/oidc", "treeId": secrets.randbits(63)}
        write_text(path, json.dumps(meta, indent=2) + "\n")
        return meta


def serve(state_dir: Path, host: str, port: int, say: Callable[[str], None]) -> None:
    """Run the stack on ``host``:``port`` until SIGTERM or SIGINT, telling ``say`` where it is."""
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {signum: signal.signal(signum, _stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        with LocalSigstore(state_dir, host, port) as stack:
            say(f"sigstore stack at {stack.url}")
            say(f"OIDC issuer {stack.issuer}; tokens: POST {stack.url}/oidc/token {{\"email\": ...}}, "
                f"with the secret in {stack.token_secret_path}")
            say(f"trust config {stack.trust_config_path}")
            stopping.wait()
            say("sigstore stack stopping")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
