"""Run `factory serve` for a test, as a user would: a real uvicorn process on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(index_dir: Path, state_dir: Path, *args: str, upstream: str = "http://127.0.0.1:9/simple/",
            auth: tuple[str, str] | None = None, stdout: Path | None = None) -> Iterator[str]:
    """Serve ``index_dir``; yields the server's base URL (``http://127.0.0.1:PORT``). ``stdout``:
    a file that gets what the server prints there (its access log)."""
    port = free_port()
    env = {**os.environ, "FACTORY_INDEX_DIR": str(index_dir), "FACTORY_STATE_DIR": str(state_dir),
           "FACTORY_UPSTREAM": upstream}
    out = stdout.open("w") if stdout else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "factory", "serve", "--port", str(port), *args], env=env,
                            stdout=out, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # only how long to wait before failing: a loaded machine starts slowly
        while True:
            try:
                httpx.get(url + "/", auth=auth, timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"factory serve did not start: {proc.stderr.read() if proc.stderr else ''}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if stdout:
            out.close()  # type: ignore[union-attr]
