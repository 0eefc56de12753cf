"""A real devpi-server for a test, on 127.0.0.1 with a server directory of its own, driven with
the real devpi client, as the repository-manager page tells users to."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from support.server import free_port

BIN = Path(sys.executable).parent
ROOT_PASSWORD = "devpi-root-secret"


class Devpi:
    """devpi-server under ``root`` (``devpi-init`` first, without the default mirror of the
    public index); ``url`` is its base URL. Use as a context manager."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.serverdir = root / "server"
        self.clientdir = root / "client"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Devpi:
        subprocess.run([str(BIN / "devpi-init"), "--serverdir", str(self.serverdir), "--no-root-pypi",
                        "--root-passwd", ROOT_PASSWORD], check=True, capture_output=True, text=True)
        log = (self.root / "server.log").open("w")
        self.proc = subprocess.Popen([str(BIN / "devpi-server"), "--serverdir", str(self.serverdir), "--host",
                                      "127.0.0.1", "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT,
                                     text=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/+api", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"devpi-server did not start: {(self.root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        self.client("use", self.url)
        self.client("login", "root", "--password", ROOT_PASSWORD)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, *args: str) -> str:
        """Run the devpi client (``devpi ARGS``) against this server; its output."""
        env = {**os.environ, "DEVPI_CLIENTDIR": str(self.clientdir)}
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
        done = subprocess.run([str(BIN / "devpi"), "--clientdir", str(self.clientdir), *args],
                              capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"devpi {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def simple(self, index: str) -> str:
        """The simple URL of ``index`` (``user/name``), ending in /."""
        return f"{self.url}/{index}/+simple/"
