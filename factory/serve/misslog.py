"""The miss log: one JSON object per request the index could not serve from its own files,
in the format ``factory ingest`` reads (see factory/misses.py)."""

from __future__ import annotations

import datetime
import json
import os
import threading
from pathlib import Path
from typing import Any


def client_facts(user_agent: str) -> dict[str, Any]:
    """What pip's and uv's User-Agent says: ``name/version {json}`` with the installer, the
    Python implementation, the libc and the CPU."""
    name, _, rest = user_agent.partition(" ")
    facts: dict[str, Any] = {}
    try:
        data = json.loads(rest) if rest.startswith("{") else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    installer = data.get("installer") if isinstance(data.get("installer"), dict) else None
    if installer:
        facts["installer"] = f"{installer.get('name')} {installer.get('version')}"
    elif "/" in name:
        facts["installer"] = name.replace("/", " ", 1)
    implementation = data.get("implementation")
    if isinstance(implementation, dict):
        facts["python"] = f"{implementation.get('name')} {implementation.get('version')}"
    elif isinstance(data.get("python"), str):
        facts["python"] = data["python"]
    distro = data.get("distro") if isinstance(data.get("distro"), dict) else {}
    libc = distro.get("libc") if isinstance(distro.get("libc"), dict) else None
    if libc:
        facts["libc"] = f"{libc.get('lib')} {libc.get('version')}"
    if isinstance(data.get("cpu"), str):
        facts["cpu"] = data["cpu"]
    return facts


class MissLog:
    """Appends records to a JSON-lines file, one ``write`` per record (O_APPEND)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def write(self, kind: str, project: str, status: int, user_agent: str, client: str,
              filename: str | None = None, version: str | None = None) -> None:
        record = {"ts": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  "kind": kind, "project": project, "filename": filename, "version": version, "status": status,
                  "user_agent": user_agent, "client": client, **client_facts(user_agent)}
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)

    def close(self) -> None:
        os.close(self._fd)
