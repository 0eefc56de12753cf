"""The miss log: one JSON object per request the index could not serve from its own files,
in the format ``factory ingest`` reads (see factory/queue/misses.py). A miss the server put in
the ledger itself is marked ``queued``: an ingest of this log does not count it twice."""

from __future__ import annotations

import datetime
import json
import os
import threading
from pathlib import Path

from factory.serve.clients import client_facts


class MissLog:
    """Appends records to a JSON-lines file, one ``write`` per record (O_APPEND)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def write(self, kind: str, project: str, status: int, user_agent: str, client: str,
              filename: str | None = None, version: str | None = None, target: str | None = None,
              tag: str | None = None, queued: bool = False) -> None:
        record = {"ts": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                  "kind": kind, "project": project, "filename": filename, "version": version, "status": status,
                  "user_agent": user_agent, "client": client, **client_facts(user_agent)}
        if target is not None:
            record.update(target=target, tag=tag)
        if queued:
            record["queued"] = True
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)

    def close(self) -> None:
        os.close(self._fd)
