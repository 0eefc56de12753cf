"""``factory worker``: claim build requests from the ledger and build them, N at a time.

Each build runs as its own ``factory build --json`` process, so that a crashing build cannot
take the worker with it, and dies with the worker if the worker is killed (no orphan can
publish behind the ledger's back). The worker renews each item's lease while it builds; if a
lease is lost (the worker stalled and another took the item), its build is stopped. On SIGTERM
(or Ctrl-C) the worker claims nothing more, stops its builds and releases their items to the
queue, uncounted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factory import podman
from factory.config import Config
from factory.failures import FailureClass
from factory.ledger import Item, Ledger
from factory.processes import die_with_parent

try:
    from psycopg import OperationalError as _PgError
except ImportError:  # pragma: no cover - a dependency
    _PgError = sqlite3.OperationalError  # type: ignore[misc,assignment]

DatabaseError = (sqlite3.OperationalError, _PgError)

#: How often a database error is retried (with a new connection) before the worker gives up.
DB_RETRIES = 5


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclasses.dataclass
class Running:
    item: Item
    proc: subprocess.Popen[bytes]
    output: Any  # the temporary file the child's JSON goes to
    started: float
    last_beat: float
    stopped: bool = False  # we stopped it (shutdown, or a lost lease): release, do not finish


@dataclasses.dataclass(frozen=True)
class Finished:
    """How one item ended, as the worker reports it."""

    item: Item
    state: str | None  # the ledger's new state; None: released, or the lease was lost
    seconds: float
    record: dict[str, Any] | None


class Worker:
    """Claims and builds; ``config_path`` is passed on to each build so it sees the same settings."""

    def __init__(self, config: Config, config_path: Path | None, jobs: int = 1,
                 on_finish: Callable[[Finished], None] = lambda _: None, verbose: bool = False) -> None:
        self.config, self.config_path, self.jobs = config, config_path, jobs
        self.on_finish, self.verbose = on_finish, verbose
        self.id = worker_id()
        self.ledger = Ledger.open(config)
        self.running: dict[int, Running] = {}
        self.stopping = False
        self.finished: list[Finished] = []

    def _db(self, call: Callable[[Ledger], Any]) -> Any:
        """A ledger call, retried on a new connection when the database hiccups (locked too long,
        a PostgreSQL restart): one such error must not kill the worker and every build under way."""
        for attempt in range(DB_RETRIES):
            try:
                return call(self.ledger)
            except DatabaseError:
                if attempt == DB_RETRIES - 1:
                    raise
                time.sleep(2 ** attempt)
                with contextlib.suppress(Exception):
                    self.ledger.close()
                self.ledger = Ledger.open(self.config)
        raise AssertionError("unreachable")

    def _command(self, item: Item) -> list[str]:
        config = ["--config", str(self.config_path)] if self.config_path else []
        return [sys.executable, "-m", "factory", *config, "build", "--json", item.spec]

    def _start(self, item: Item) -> None:
        output = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            self._command(item), stdout=output, stderr=None if self.verbose else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent,
        )
        now = time.time()
        self.running[item.id] = Running(item, proc, output, now, now)

    def stop(self, *_: object) -> None:
        """Claim nothing more; stop the builds under way (their items go back to the queue)."""
        self.stopping = True
        for run in self.running.values():
            if run.proc.poll() is None:
                run.stopped = True
                run.proc.send_signal(signal.SIGTERM)

    def _collect(self, run: Running) -> None:
        del self.running[run.item.id]
        seconds = time.time() - run.started
        run.output.seek(0)
        text = run.output.read().decode("utf-8", "replace")
        run.output.close()
        record = None
        try:
            record = json.loads(text)[0]
        except (ValueError, IndexError, KeyError):
            pass
        if run.stopped:
            self._db(lambda ledger: ledger.release(run.item.id, self.id))
            result = Finished(run.item, None, seconds, record)
        elif record is None:
            state = self._db(lambda ledger: ledger.finish(
                run.item, self.id, "failed", str(FailureClass.INTERNAL),
                f"the build process ended with code {run.proc.returncode} and no record"))
            result = Finished(run.item, state, seconds, None)
        else:
            records_dir = self.config.records_dir / (record.get("project") or "_unresolved")
            state = self._db(lambda ledger: ledger.finish(
                run.item, self.id, record["status"], record.get("failure_class"), record.get("reason"),
                str(records_dir / f"{record['id']}.json"), record.get("version"),
            ))
            result = Finished(run.item, state, seconds, record)
        self.finished.append(result)
        self.on_finish(result)

    def _heartbeats(self) -> None:
        now = time.time()
        for run in list(self.running.values()):
            if now - run.last_beat >= self.config.lease_seconds / 3:
                run.last_beat = now
                if not self._db(lambda ledger: ledger.heartbeat(run.item.id, self.id)) and not run.stopped:
                    run.stopped = True  # another worker has it now: this build must not publish
                    run.proc.send_signal(signal.SIGTERM)

    def run(self, once: bool = False, forever: bool = False, poll: float = 5.0) -> list[Finished]:
        """Claim and build until nothing is claimable (``forever``: until stopped; ``once``: one item)."""
        # Builds of a worker that was killed leave stopped containers behind: clear them.
        podman.podman("container", "prune", "--force", "--filter", "label=factory.build", check=False)
        handlers = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        claimed = 0
        try:
            while True:
                while not self.stopping and len(self.running) < self.jobs and not (once and claimed):
                    item = self._db(lambda ledger: ledger.claim(self.id))
                    if item is None:
                        break
                    claimed += 1
                    self._start(item)
                if not self.running:
                    if self.stopping or once or not forever:
                        break
                    time.sleep(poll)
                    continue
                time.sleep(0.2)
                for run in list(self.running.values()):
                    if run.proc.poll() is not None:
                        self._collect(run)
                self._heartbeats()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            self.ledger.close()
        return self.finished
