"""Start the local stack as a background process when it is not already answering, so that
signing with ``signing = "local"`` needs nothing started by hand."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from factory.sigstore_stack.errors import StackError


def answers(url: str) -> bool:
    """Whether a stack answers at ``url``."""
    try:
        return httpx.get(f"{url.rstrip('/')}/oidc/jwks", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_running(url: str, state_dir: Path, config_path: Path | None = None, timeout: float = 30) -> bool:
    """Start ``factory sigstore-stack`` detached on ``state_dir`` unless ``url`` answers; True if it
    was started. Its output goes to ``state_dir/stack.log``."""
    if answers(url):
        return False
    state_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "factory", *(["--config", str(config_path)] if config_path else []),
               "sigstore-stack", "--state", str(state_dir)]
    with (state_dir / "stack.log").open("ab") as log:
        subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not answers(url):
        if time.monotonic() > deadline:
            raise StackError(f"the Sigstore stack did not start at {url}; see {state_dir / 'stack.log'}")
        time.sleep(0.2)
    return True
