"""Misses into the ledger as they happen, so that a miss is a queued request within a second
and no person has to run ``factory ingest``.

Requests are served at once; a thread of its own gathers their misses and writes them to the
ledger every ``interval`` seconds, aggregated (one write per batch, not per request). When the
ledger cannot be reached, the misses wait and are tried again on a new connection; past
``max_pending`` they go to an overflow log (``factory ingest`` reads it later), so none is lost.
The JSON-lines miss log keeps every miss too, each marked as put in the ledger.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import sys
import threading
from collections.abc import Collection
from pathlib import Path

from factory.config import Config
from factory.queue.ingest import aggregate
from factory.queue.ledger import Ledger, LedgerError
from factory.queue.misses import Miss


class LedgerSink:
    """Puts misses into the ledger from a thread; ``put`` never blocks on the database."""

    def __init__(self, config: Config, buildable: Collection[str], overflow: Path, interval: float = 0.2,
                 max_pending: int = 100_000) -> None:
        self.config, self.buildable, self.overflow = config, tuple(buildable), overflow
        self.interval, self.max_pending = interval, max_pending
        self._pending: collections.deque[Miss] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._ledger: Ledger | None = None
        self._busy = False  # a batch is being written
        self.written = self.overflowed = 0
        self._thread = threading.Thread(target=self._run, name="ledger-sink", daemon=True)
        self._thread.start()

    def put(self, miss: Miss) -> None:
        with self._lock:
            self._pending.append(miss)
            if len(self._pending) > self.max_pending:
                self._spill([self._pending.popleft() for _ in range(len(self._pending) - self.max_pending)])

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until what was put so far is in the ledger (for tests and shutdown)."""
        self._wake.set()
        waited = 0.0
        while waited < timeout:
            with self._lock:
                if not self._pending and not self._busy:
                    return True
            threading.Event().wait(0.02)
            waited += 0.02
        return False

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._write()
        self._write()

    def _write(self) -> None:
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
            self._busy = bool(batch)
        if not batch:
            return
        try:
            if self._ledger is None:
                self._ledger = Ledger.open(self.config)
            self._ledger.add(aggregate(batch), buildable=self.buildable)
            self.written += len(batch)
        except LedgerError as exc:  # down, or busy: try again on a new connection, keeping the misses
            print(f"factory serve: the queue did not take {len(batch)} misses ({exc}); trying again", file=sys.stderr)
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None
            with self._lock:
                self._pending.extendleft(reversed(batch))
                if len(self._pending) > self.max_pending:
                    self._spill([self._pending.popleft() for _ in range(len(self._pending) - self.max_pending)])
            self._wake.wait(1.0)
        finally:
            with self._lock:
                self._busy = False

    def _spill(self, misses: list[Miss]) -> None:
        """Misses the ledger could not take in time, to the overflow log (``factory ingest``)."""
        self.overflowed += len(misses)
        lines = "".join(json.dumps({"ts": m.ts, "kind": m.kind, "project": m.project, "version": m.version,
                                    "filename": m.filename, "client": m.client, "target": m.target, "status": 0})
                        + "\n" for m in misses)
        self.overflow.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.overflow, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)
        if self._ledger is not None:
            with contextlib.suppress(LedgerError):
                self._ledger.close()
