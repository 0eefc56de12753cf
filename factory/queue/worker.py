"""``factory worker``: claim build requests from the ledger and build them, N at a time.

Each build runs as its own ``factory build`` process, so that a crashing build cannot
take the worker with it, and dies with the worker if the worker is killed (no orphan can
publish behind the ledger's back). The worker renews each item's lease while it builds, and
writes each renewal into the build's lease file: the build stops itself when the lease runs
low (a worker that is stopped renews nothing, see ``lease.py``); if a lease is lost (another
worker took the item), the worker stops the build, which then publishes nothing. On SIGTERM
(or Ctrl-C) the worker claims nothing more, stops its builds and releases their items to the
queue, uncounted. The worker names each build's id, so it knows where the build writes its
record, and reads how the build ended from there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factory.config import Config
from factory.failures import FailureClass
from factory.pipeline.record import BuildRecord, BuildStatus, load, new_build_id, record_path
from factory.pipeline.request import parse_request
from factory.plumbing import podman
from factory.plumbing.processes import die_with_parent
from factory.queue import lease
from factory.queue.ledger import Item, Ledger, LedgerUnavailable, State
from factory.queue.misses import MAX_NAME, valid_name

#: How often a database error is retried (with a new connection) before the worker gives up.
DB_RETRIES = 5


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclasses.dataclass
class Running:
    item: Item
    proc: subprocess.Popen[bytes]
    record: Path  # where the build writes its record
    lease: Path  # the lease file the build watches
    started: float
    last_beat: float
    stopped: bool = False  # we stopped it (shutdown, or a lost lease): release, do not finish


@dataclasses.dataclass(frozen=True)
class Finished:
    """How one item ended, as the worker reports it."""

    item: Item
    state: State | None  # the ledger's new state; None: released, or the lease was lost
    seconds: float
    record: BuildRecord | None


class Worker:
    """Claims and builds; ``config_path`` is passed on to each build so it sees the same settings."""

    def __init__(self, config: Config, config_path: Path | None, jobs: int = 1,
                 on_finish: Callable[[Finished], None] = lambda _: None, verbose: bool = False) -> None:
        self.config, self.config_path, self.jobs = config, config_path, jobs
        self.on_finish, self.verbose = on_finish, verbose
        self.id = worker_id()
        self.ledger: Ledger | None = Ledger.open(config)
        self.running: dict[int, Running] = {}
        self.stopping = False
        self.finished: list[Finished] = []

    def _db(self, call: Callable[[Ledger], Any]) -> Any:
        """A ledger call, retried on a new connection when the database hiccups (locked too long,
        a PostgreSQL restart): one such error must not kill the worker and every build under way."""
        for attempt in range(DB_RETRIES):
            try:
                if self.ledger is None:
                    self.ledger = Ledger.open(self.config)
                return call(self.ledger)
            except LedgerUnavailable:
                if attempt == DB_RETRIES - 1:
                    raise
                time.sleep(2 ** attempt)
                if self.ledger is not None:
                    self.ledger.close()
                    self.ledger = None
        raise AssertionError("unreachable")

    def _command(self, item: Item, build_id: str, lease_file: Path) -> list[str]:
        config = ["--config", str(self.config_path)] if self.config_path else []
        floor = ["--floor", item.floor] if item.floor else []
        # "--": whatever the ledger holds is a request, never an option.
        return [sys.executable, "-m", "factory", *config, "build", "--build-id", build_id, "--lease-file",
                str(lease_file), *floor, "--", item.spec]

    def _start(self, item: Item) -> None:
        build_id = new_build_id()
        lease_file = self.config.work_dir / f"{build_id}.lease"
        lease.write(lease_file, item.lease_expires or time.time() + self.config.lease_seconds, self.config.lease_seconds)
        proc = subprocess.Popen(
            self._command(item, build_id, lease_file), stdout=None if self.verbose else subprocess.DEVNULL,
            stderr=None if self.verbose else subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent,
        )
        now = time.time()
        path = record_path(self.config.records_dir, item.project, build_id)
        self.running[item.id] = Running(item, proc, path, lease_file, now, now)

    def _refuse(self, item: Item) -> None:
        """An item queued before names were checked, whose name is no project's: refused, never
        passed to a build (a huge one made every start fail with E2BIG)."""
        state = self._db(lambda ledger: ledger.finish(
            item, self.id, BuildStatus.FAILED, FailureClass.NOT_FOUND,
            f"not a project name (PEP 508, at most {MAX_NAME} characters): {item.project[:60]!r}"))
        result = Finished(item, state, 0.0, None)
        self.finished.append(result)
        self.on_finish(result)

    def stop(self, *_: object) -> None:
        """Claim nothing more; stop the builds under way (their items go back to the queue)."""
        self.stopping = True
        for run in self.running.values():
            if run.proc.poll() is None:
                run.stopped = True
                run.proc.send_signal(signal.SIGTERM)

    def _collect(self, run: Running) -> None:
        del self.running[run.item.id]
        run.lease.unlink(missing_ok=True)
        seconds = time.time() - run.started
        record = None
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # no record, or a torn one
            record = load(run.record)
        if run.stopped:
            self._db(lambda ledger: ledger.release(run.item.id, self.id))
            result = Finished(run.item, None, seconds, record)
        elif record is None:
            state = self._db(lambda ledger: ledger.finish(
                run.item, self.id, BuildStatus.FAILED, FailureClass.INTERNAL,
                f"the build process ended with code {run.proc.returncode} and no record"))
            result = Finished(run.item, state, seconds, None)
        elif record.status is BuildStatus.WAITING:  # build dependencies first: the ledger queues them
            deps = [(r.project, str(r.version)) for r in map(parse_request, record.waiting_for)]
            state = self._db(lambda ledger: ledger.wait(run.item, self.id, deps, str(run.record), record.waiting_floor))
            result = Finished(run.item, state, seconds, record)
        else:
            done = record
            state = self._db(lambda ledger: ledger.finish(
                run.item, self.id, done.status, done.failure_class, done.reason, str(run.record), done.version))
            result = Finished(run.item, state, seconds, record)
        self.finished.append(result)
        self.on_finish(result)

    def _heartbeats(self) -> None:
        now = time.time()
        for run in list(self.running.values()):
            if now - run.last_beat >= self.config.lease_seconds / 3:
                run.last_beat = now
                if self._db(lambda ledger: ledger.heartbeat(run.item.id, self.id, now)):
                    lease.write(run.lease, now + self.config.lease_seconds, self.config.lease_seconds)
                elif not run.stopped:
                    run.stopped = True  # another worker has it now: this build must not publish
                    lease.write(run.lease, 0, self.config.lease_seconds)
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
                    if valid_name(item.project):
                        self._start(item)
                    else:
                        self._refuse(item)
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
            if self.ledger is not None:
                self.ledger.close()
        return self.finished
