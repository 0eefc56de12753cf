"""Start the local stack of a state directory as a background process when it is not running,
so that signing with ``signing = "local"`` needs nothing started by hand.

The stack binds a port the system picks (or the one ``local-sigstore`` names) and says where in
its state directory (``running.json``), so that the stacks of two state directories on one host
each run, and each factory finds its own.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from factory.sigstore_stack.client import held, locate, pinned, prove, running_url
from factory.sigstore_stack.errors import NotOurStack, StackError, StackNotRunning, TokenRequestFailed


def answers(state_dir: Path, url: str) -> bool:
    """Whether the stack of ``state_dir`` answers at ``url`` (and proves it is that stack).

    Raises ``NotOurStack`` when something else answers there."""
    try:
        prove(url, pinned(state_dir), timeout=5)
    except (TokenRequestFailed, StackNotRunning):
        return False
    return True


def ensure_running(state_dir: Path, override: str = "", config_path: Path | None = None,
                   timeout: float = 30) -> str | None:
    """Start ``factory sigstore-stack`` detached on ``state_dir`` unless its stack runs; the URL
    it listens at if it was started now, None if it was running. Its output goes to
    ``state_dir/stack.log``.

    Raises ``NotOurStack`` when ``override`` names a port something else answers on."""
    if (override or running_url(state_dir)) and answers(state_dir, locate(state_dir, override)):
        return None
    state_dir.mkdir(parents=True, exist_ok=True)
    where = urlsplit(override) if override else None
    listen = ["--host", where.hostname or "127.0.0.1", "--port", str(where.port or 80)] if where else []
    command = [sys.executable, "-m", "factory", *(["--config", str(config_path)] if config_path else []),
               "sigstore-stack", "--state", str(state_dir), *listen]
    with (state_dir / "stack.log").open("ab") as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        url = override.rstrip("/") if override else running_url(state_dir)
        try:
            if url and answers(state_dir, url):
                return url
        except NotOurStack:
            if proc.poll() is not None:  # it could not bind: something else has the port
                raise
        # Ended without a stack holding the directory: it failed (one that lost a race to another
        # process starting the same directory's stack waits for that one).
        if (proc.poll() is not None and not held(state_dir)) or time.monotonic() > deadline:
            raise StackError(f"the Sigstore stack of {state_dir} did not start; see {state_dir / 'stack.log'}")
        time.sleep(0.2)
