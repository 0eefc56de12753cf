"""The build ledger: a durable, deduplicated, prioritized queue of build requests.

One schema and one code path for two databases: SQLite in WAL mode (the default, in the state
directory, nothing to start) and PostgreSQL (``queue-url = "postgresql://..."``), which workers
on several hosts share. A claim is atomic (a write transaction on SQLite, ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL) and carries a lease that the worker renews; an expired lease puts the
item back in the queue.

A request is a project and a version, or ``latest``. Its states::

    queued -> building -> built
                       -> failed   (a class and a reason; a person may `factory requeue` it)
                       -> refused  (permanent: no sdist, no such release, unsafe archive, ...)
                       -> queued   (transient classes, with exponential backoff, up to a limit)
                       -> waiting  (for build dependencies, which are queued: "build dependency of
                                    X==V"; queued again once all are built, failed with
                                    dependency-failed when one fails, dependency-cycle on a cycle)

Priority rises with hits, distinct clients and recency::

    priority = ln(1 + hits) + ln(1 + clients) + last_seen / 86400

which orders requests exactly as ``(1 + hits) * (1 + clients) * exp(-age / 1 day)`` would at
any moment (the decay is common to all), without ever recomputing stored priorities: a request
left unasked for a day weighs e (2.7) times less than one asked for now.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import math
import re
import sqlite3
import time
import zlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from factory.config import Config
from factory.failures import ConfigError, FactoryError, FailureClass
from factory.pipeline.record import BuildStatus


class State(enum.StrEnum):
    """Where a request stands."""

    QUEUED = "queued"  # waiting to be claimed (transient failures come back here, after a backoff)
    BUILDING = "building"  # leased to a worker
    BUILT = "built"  # every target is in the index, or skipped by the recipe
    FAILED = "failed"  # a class and a reason a person can act on; `factory requeue` after a fix
    REFUSED = "refused"  # permanent: no rebuild can cure it without a change upstream
    WAITING = "waiting"  # for its build dependencies to be built


STATES = tuple(State)
LATEST = "latest"
#: Failures no rebuild can cure without a change upstream.
REFUSED = {FailureClass.NO_SOURCE, FailureClass.NOT_FOUND, FailureClass.HASH_MISMATCH,
           FailureClass.UNSAFE_ARCHIVE, FailureClass.NO_TARGET, FailureClass.NEEDS_RUST}
DAY = 86400.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id {id},
    project TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    priority DOUBLE PRECISION NOT NULL,
    hits BIGINT NOT NULL,
    clients BIGINT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before DOUBLE PRECISION NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires DOUBLE PRECISION,
    failure_class TEXT,
    reason TEXT,
    record TEXT,
    built_version TEXT,
    updated DOUBLE PRECISION NOT NULL,
    origin TEXT,
    floor TEXT,
    UNIQUE (project, version)
);
CREATE INDEX IF NOT EXISTS requests_by_state ON requests (state, priority);
CREATE TABLE IF NOT EXISTS request_clients (
    project TEXT NOT NULL,
    version TEXT NOT NULL,
    client TEXT NOT NULL,
    PRIMARY KEY (project, version, client)
);
CREATE TABLE IF NOT EXISTS request_deps (
    request_id BIGINT NOT NULL,
    project TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (request_id, project, version)
);
CREATE INDEX IF NOT EXISTS request_deps_by_dependency ON request_deps (project, version);
CREATE TABLE IF NOT EXISTS request_targets (
    project TEXT NOT NULL,
    version TEXT NOT NULL,
    target TEXT NOT NULL,
    hits BIGINT NOT NULL,
    PRIMARY KEY (project, version, target)
);
CREATE TABLE IF NOT EXISTS ingested (
    head TEXT NOT NULL,
    size BIGINT NOT NULL,
    digest TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (head, size, digest)
)
"""
#: Two logs may begin alike and be as long: the key of an ingested input is all three.
_INGESTED_KEY = ("head", "size", "digest")
_REKEY_INGESTED = [
    "ALTER TABLE ingested RENAME TO ingested_old",
    SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS ingested"):].strip().rstrip(";"),
    "INSERT INTO ingested (head, size, digest, at) SELECT head, size, digest, at FROM ingested_old",
    "DROP TABLE ingested_old",
]

COLUMNS = ("id", "project", "version", "state", "priority", "hits", "clients", "first_seen", "last_seen",
           "attempts", "not_before", "lease_owner", "lease_expires", "failure_class", "reason", "record",
           "built_version", "updated", "origin", "floor")


def priority(hits: int, clients: int, last_seen: float) -> float:
    return math.log1p(hits) + math.log1p(clients) + last_seen / DAY


def weight(priority: float, now: float) -> float:
    """What a priority is worth at ``now``: (1 + hits)(1 + clients) e^(-days since last seen)."""
    return math.exp(priority - now / DAY)


@dataclasses.dataclass(frozen=True)
class Item:
    """One build request, as the ledger holds it."""

    id: int
    project: str
    version: str  # a version, or "latest"
    state: State
    priority: float
    hits: int
    clients: int
    first_seen: float
    last_seen: float
    attempts: int
    not_before: float
    lease_owner: str | None
    lease_expires: float | None
    failure_class: str | None
    reason: str | None
    record: str | None
    built_version: str | None
    updated: float
    origin: str | None = None  # why it was queued, when not for misses: "build dependency of X==V"
    floor: str | None = None  # a build dependency's: built with tools no older than this

    @property
    def spec(self) -> str:
        """What ``factory build`` takes: ``name==version``, or ``name`` for the newest."""
        return self.project if self.version == LATEST else f"{self.project}=={self.version}"

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Item:
        values = list(row)
        values[3] = State(values[3])
        return cls(*values)


@dataclasses.dataclass(frozen=True)
class Demand:
    """Misses for one request, aggregated."""

    project: str
    version: str
    hits: int
    clients: frozenset[str]
    first_seen: float
    last_seen: float
    targets: Mapping[str, int] = dataclasses.field(default_factory=dict)  # target -> misses of it (no-compatible-file)


class Conflict(FactoryError):
    """Another process changed what this one relied on; try again."""


class LedgerError(FactoryError):
    """The queue's database failed (a corrupt file, a refused statement)."""


class LedgerUnavailable(LedgerError):
    """The queue's database could not be reached, or stayed busy: try again on a new connection."""


class _Dialect:
    """What differs between the two databases: connecting, placeholders, a few words of SQL."""

    name = "sqlite"
    placeholder = "?"
    greatest, least = "max", "min"
    id_column = "INTEGER PRIMARY KEY"
    skip_locked = ""

    def __init__(self, target: str) -> None:
        self.target = target

    def translate(self, exc: Exception) -> LedgerError | None:
        """The ledger's own error for one of the driver's, None if it is not the driver's."""
        if isinstance(exc, sqlite3.OperationalError):
            return LedgerUnavailable(f"the queue database {self.target}: {exc}")
        if isinstance(exc, sqlite3.Error):
            return LedgerError(f"the queue database {self.target}: {exc}")
        return None

    def connect(self) -> Any:
        Path(self.target).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.target, isolation_level=None, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across a crash of the process
        return conn

    def begin(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now: claims are serialized

    def create(self, conn: Any) -> None:
        conn.executescript(SCHEMA.format(id=self.id_column))
        columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
        for column in ("origin", "floor"):  # a queue made before build dependencies
            if column not in columns:
                conn.execute(f"ALTER TABLE requests ADD COLUMN {column} TEXT")
        if self._ingested_key(conn) != _INGESTED_KEY:  # a queue made when inputs were keyed by (head, size)
            conn.execute("BEGIN IMMEDIATE")
            if self._ingested_key(conn) != _INGESTED_KEY:  # not rekeyed by another process meanwhile
                for statement in _REKEY_INGESTED:
                    conn.execute(statement)
            conn.execute("COMMIT")

    @staticmethod
    def _ingested_key(conn: Any) -> tuple[str, ...]:
        return tuple(row[1] for row in sorted(conn.execute("PRAGMA table_info(ingested)"), key=lambda r: r[5]) if row[5])

    def lock_ingest(self, conn: Any) -> None:
        """Inside a transaction: wait for other ingests (SQLite's write lock already did)."""


class _Postgres(_Dialect):
    name = "postgresql"
    placeholder = "%s"
    greatest, least = "GREATEST", "LEAST"
    id_column = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    skip_locked = "FOR UPDATE SKIP LOCKED"

    def translate(self, exc: Exception) -> LedgerError | None:
        import psycopg

        where = _masked(self.target)
        if isinstance(exc, psycopg.OperationalError):
            return LedgerUnavailable(f"the queue database {where}: {str(exc).strip()}")
        if isinstance(exc, psycopg.Error):
            return LedgerError(f"the queue database {where}: {str(exc).strip()}")
        return None

    def connect(self) -> Any:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - a dependency of factory
            raise ConfigError("queue-url is PostgreSQL but psycopg is not installed") from exc
        try:
            return psycopg.connect(self.target, autocommit=True)
        except psycopg.OperationalError as exc:
            raise LedgerUnavailable(f"cannot connect to the queue at {_masked(self.target)}: {exc}".strip()) from exc

    def begin(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def lock_ingest(self, conn: Any) -> None:
        conn.execute(f"SELECT pg_advisory_xact_lock({zlib.crc32(b'factory-ledger-ingest')})")

    def create(self, conn: Any) -> None:
        # Workers starting together must not race on CREATE TABLE: one at a time.
        lock = zlib.crc32(b"factory-ledger-schema")
        conn.execute(f"SELECT pg_advisory_lock({lock})")
        try:
            for statement in SCHEMA.format(id=self.id_column).split(";"):
                if statement.strip():
                    conn.execute(statement)
            for column in ("origin", "floor"):  # a queue made before build dependencies
                conn.execute(f"ALTER TABLE requests ADD COLUMN IF NOT EXISTS {column} TEXT")
            key = conn.execute(
                "SELECT count(*) FROM information_schema.key_column_usage WHERE table_schema = current_schema() "
                "AND table_name = 'ingested' AND constraint_name = 'ingested_pkey'").fetchone()[0]
            if key != len(_INGESTED_KEY):  # a queue made when ingested inputs were keyed by (head, size)
                with conn.transaction():
                    conn.execute("ALTER TABLE ingested DROP CONSTRAINT ingested_pkey")
                    conn.execute("ALTER TABLE ingested ADD PRIMARY KEY (head, size, digest)")
        finally:
            conn.execute(f"SELECT pg_advisory_unlock({lock})")


def _masked(url: str) -> str:
    """A URL with its password hidden."""
    return re.sub(r"(://[^/:@]+:)[^/@]+@", r"\1***@", url)


class Ledger:
    """The queue. ``url`` is a PostgreSQL URL or an SQLite file path. Database faults are raised
    as :class:`LedgerError` (:class:`LedgerUnavailable` when trying again may help)."""

    def __init__(self, url: str, *, lease_seconds: float = 300, max_attempts: int = 3, backoff: float = 60) -> None:
        self.dialect = _Postgres(url) if url.startswith(("postgresql://", "postgres://")) else _Dialect(url)
        self.lease_seconds, self.max_attempts, self.backoff = lease_seconds, max_attempts, backoff
        with self._errors():
            self.conn = self.dialect.connect()
            self.dialect.create(self.conn)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Raise the driver's errors as the ledger's own."""
        try:
            yield
        except Exception as exc:
            translated = self.dialect.translate(exc)
            if translated is None:
                raise
            raise translated from exc

    @classmethod
    def open(cls, config: Config) -> Ledger:
        url = config.queue_url or str(config.state_dir / "queue.sqlite3")
        return cls(url, lease_seconds=config.lease_seconds, max_attempts=config.max_attempts,
                   backoff=config.retry_backoff)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a connection that is already gone is closed
            self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        sql = sql.replace("{greatest}", self.dialect.greatest).replace("{least}", self.dialect.least)
        return sql.replace("{skip_locked}", self.dialect.skip_locked).replace("?", self.dialect.placeholder)

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with self._errors():
            return self.conn.execute(self._sql(sql), tuple(args))

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            with self._errors():
                self.conn.cursor().executemany(self._sql(sql), rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._errors():
            self.dialect.begin(self.conn)
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # the connection may be the thing that failed
                self.conn.execute("ROLLBACK")
            raise
        with self._errors():
            self.conn.execute("COMMIT")

    def _items(self, where: str, args: Sequence[Any] = ()) -> list[Item]:
        with self._errors():
            rows = self._execute(f"SELECT {', '.join(COLUMNS)} FROM requests {where}", args).fetchall()
        return [Item.from_row(row) for row in rows]

    # -- ingest -------------------------------------------------------------------------------

    def _by_project(self, projects: Sequence[str]) -> list[tuple[str, str, int, int, float]]:
        """(project, version, hits, clients, last_seen) of every request of these projects."""
        rows = []
        for start in range(0, len(projects), 500):
            chunk = projects[start:start + 500]
            rows += self._execute(
                f"SELECT project, version, hits, clients, last_seen FROM requests "
                f"WHERE project IN ({', '.join('?' * len(chunk))})", chunk,
            ).fetchall()
        return rows

    def ingested_prefixes(self, head: str) -> list[tuple[int, str]]:
        """(size, digest) of inputs already ingested that began with the same first block,
        longest first: some may be beginnings of the input at hand, others of other inputs."""
        rows = self._execute("SELECT size, digest FROM ingested WHERE head = ? ORDER BY size DESC, digest", [head])
        return [(int(size), digest) for size, digest in rows.fetchall()]

    def add(self, demands: Sequence[Demand], ingested: tuple[str, int, str] | None = None,
            now: float | None = None, seen: Collection[tuple[int, str]] = (), origin: str | None = None,
            buildable: Collection[str] = ()) -> tuple[int, int]:
        """Record demand, all or nothing: new requests are queued, known ones only gain hits,
        clients and priority, whatever their state. Returns (new requests, updated requests).
        ``origin`` says why new requests are queued when it is not for misses (a lock file's
        name, say). A built request whose clients missed one of the ``buildable`` targets (a
        CPython added to the images since, say) is queued again: its build makes only what is
        missing.

        ``ingested`` (head, size, digest) marks an input as ingested up to ``size``; ``seen`` is
        what :meth:`ingested_prefixes` gave the caller for that head, from which it found the
        part ingested before: if another ingest recorded an input with that head meanwhile,
        :class:`Conflict` is raised and nothing is recorded (the caller looks again)."""
        now = time.time() if now is None else now
        projects = sorted({d.project for d in demands})
        with self._transaction():
            # Ingests take turns (on SQLite the write transaction already does that): two ingests of
            # one log must not both count it, nor race to create the same request.
            self.dialect.lock_ingest(self.conn)
            if ingested is not None and set(self.ingested_prefixes(ingested[0])) != set(seen):
                raise Conflict("a log beginning like this one was ingested by another process meanwhile")
            known = {(p, v) for p, v, *_ in self._by_project(projects)}
            fresh = [d for d in demands if (d.project, d.version) not in known]
            again = [d for d in demands if (d.project, d.version) in known]
            # New requests: everything is known here, one insert each.
            self._executemany(
                "INSERT INTO requests (project, version, state, priority, hits, clients, first_seen, last_seen, updated, "
                "origin) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                [(d.project, d.version, priority(d.hits, len(d.clients), d.last_seen), d.hits, len(d.clients),
                  d.first_seen, d.last_seen, now, origin) for d in fresh],
            )
            self._executemany(
                "INSERT INTO request_targets (project, version, target, hits) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (project, version, target) DO UPDATE SET hits = request_targets.hits + excluded.hits",
                [(d.project, d.version, target, n) for d in demands for target, n in d.targets.items()],
            )
            retarget = [(d.project, d.version) for d in again if set(d.targets) & set(buildable)]
            self._executemany(
                "UPDATE requests SET state = 'queued', attempts = 0, not_before = 0, updated = ? "
                "WHERE project = ? AND version = ? AND state = 'built'", [(now, p, v) for p, v in retarget])
            self._executemany(
                "INSERT INTO request_clients (project, version, client) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(d.project, d.version, c) for d in demands for c in d.clients],
            )
            # Known requests: add the hits, widen the times, count the clients again, re-rank.
            self._executemany(
                "UPDATE requests SET hits = hits + ?, first_seen = {least}(first_seen, ?), "
                "last_seen = {greatest}(last_seen, ?), updated = ?, clients = (SELECT count(*) FROM request_clients c "
                "WHERE c.project = requests.project AND c.version = requests.version) WHERE project = ? AND version = ?",
                [(d.hits, d.first_seen, d.last_seen, now, d.project, d.version) for d in again],
            )
            if again:
                wanted = {(d.project, d.version) for d in again}
                self._executemany(
                    "UPDATE requests SET priority = ? WHERE project = ? AND version = ?",
                    [(priority(hits, clients, seen), p, v)
                     for p, v, hits, clients, seen in self._by_project(sorted({d.project for d in again}))
                     if (p, v) in wanted],
                )
            if ingested is not None:
                self._execute("INSERT INTO ingested (head, size, digest, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                              [*ingested, now])
        return len(fresh), len(again)

    # -- workers ------------------------------------------------------------------------------

    def claim(self, worker: str, now: float | None = None) -> Item | None:
        """Take the most wanted claimable item (queued and due, or building with an expired
        lease) and lease it to ``worker``; None when there is none."""
        now = time.time() if now is None else now
        with self._transaction():
            # A lease that expired max_attempts times: the build keeps killing its worker.
            self._execute(
                "UPDATE requests SET state = 'failed', failure_class = 'internal', lease_owner = NULL, updated = ?, "
                "reason = 'the worker building it was lost ' || attempts || ' times (killed, or its host died)' "
                "WHERE state = 'building' AND lease_expires < ? AND attempts >= ?",
                [now, now, self.max_attempts],
            )
            row = self._execute(
                f"UPDATE requests SET state = 'building', lease_owner = ?, lease_expires = ?, attempts = attempts + 1, "
                f"updated = ? WHERE id = (SELECT id FROM requests WHERE (state = 'queued' AND not_before <= ?) "
                f"OR (state = 'building' AND lease_expires < ?) ORDER BY priority DESC, id LIMIT 1 {{skip_locked}}) "
                f"RETURNING {', '.join(COLUMNS)}",
                [worker, now + self.lease_seconds, now, now, now],
            ).fetchone()
        return Item.from_row(row) if row else None

    def heartbeat(self, item_id: int, worker: str, now: float | None = None) -> bool:
        """Renew the lease; False if it was lost (expired and taken by another worker)."""
        now = time.time() if now is None else now
        cur = self._execute(
            "UPDATE requests SET lease_expires = ? WHERE id = ? AND lease_owner = ? AND state = 'building'",
            [now + self.lease_seconds, item_id, worker],
        )
        return cur.rowcount == 1

    def release(self, item_id: int, worker: str, now: float | None = None) -> bool:
        """Give an item back untouched (the worker is stopping): queued again, the attempt not counted."""
        now = time.time() if now is None else now
        cur = self._execute(
            "UPDATE requests SET state = 'queued', lease_owner = NULL, lease_expires = NULL, attempts = attempts - 1, "
            "updated = ? WHERE id = ? AND lease_owner = ? AND state = 'building'",
            [now, item_id, worker],
        )
        return cur.rowcount == 1

    def finish(self, item: Item, worker: str, status: BuildStatus, failure_class: FailureClass | None = None,
               reason: str | None = None, record: str | None = None, built_version: str | None = None,
               now: float | None = None) -> State | None:
        """Record how a build ended; return the item's new state (None if the lease was lost)."""
        now = time.time() if now is None else now
        not_before = 0.0
        if status is BuildStatus.BUILT:
            state = State.BUILT
        elif failure_class is not None and failure_class.transient and item.attempts < self.max_attempts:
            state = State.QUEUED
            not_before = now + self.backoff * 2 ** (item.attempts - 1)
        elif failure_class in REFUSED:
            state = State.REFUSED
        else:
            state = State.FAILED
        built = state is State.BUILT
        with self._transaction():
            cur = self._execute(
                "UPDATE requests SET state = ?, failure_class = ?, reason = ?, record = ?, built_version = ?, "
                "not_before = ?, lease_owner = NULL, lease_expires = NULL, updated = ? "
                "WHERE id = ? AND lease_owner = ? AND state = 'building'",
                [str(state), None if built or failure_class is None else str(failure_class), None if built else reason,
                 record, built_version, not_before, now, item.id, worker],
            )
            if cur.rowcount != 1:
                return None
            if state is not State.QUEUED:
                self._settle_dependents(item.project, item.version, state, failure_class, reason, now)
        return state

    # -- build dependencies ---------------------------------------------------------------------

    def wait(self, item: Item, worker: str, dependencies: Sequence[tuple[str, str]], record: str | None = None,
             floor: str | None = None, now: float | None = None) -> State | None:
        """The build of ``item`` needs ``dependencies`` (project, version) in the index first:
        queue those (with ``item``'s priority, the reason "build dependency of ..."), and let the
        item wait for them. Returns its new state: waiting; queued if they were all built
        meanwhile; failed when one failed already, or when they need the item itself (a cycle).
        None if the lease was lost. ``floor`` goes to the dependencies queued now: they are built with
        tools no older than it."""
        now = time.time() if now is None else now
        origin = f"build dependency of {item.spec if item.version != LATEST else item.project}"
        with self._transaction():
            owned = self._execute("SELECT 1 FROM requests WHERE id = ? AND lease_owner = ? AND state = 'building'",
                                  [item.id, worker]).fetchone()
            if owned is None:
                return None
            if cycle := self._cycle(item, dependencies):
                self._fail(item.id, FailureClass.DEPENDENCY_CYCLE,
                           f"build dependencies form a cycle ({cycle}): a recipe must take one of them from the upstream "
                           "as a binary ([build-requires] seed)", now, record)
                self._settle_dependents(item.project, item.version, State.FAILED, FailureClass.DEPENDENCY_CYCLE,
                                        f"{item.spec} is in a build-dependency cycle", now)
                return State.FAILED
            before = {(p, v) for p, v in self._execute(
                "SELECT project, version FROM request_deps WHERE request_id = ?", [item.id]).fetchall()}
            for project, version in dependencies:
                self._execute(
                    "INSERT INTO requests (project, version, state, priority, hits, clients, first_seen, last_seen, "
                    "updated, origin, floor) VALUES (?, ?, 'queued', ?, 0, 0, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [project, version, item.priority, now, now, now, origin, floor])
                # A dependency is as urgent as what waits for it.
                self._execute("UPDATE requests SET priority = {greatest}(priority, ?) WHERE project = ? AND "
                              "version = ? AND state = 'queued'", [item.priority, project, version])
                self._execute("INSERT INTO request_deps (request_id, project, version) VALUES (?, ?, ?) "
                              "ON CONFLICT DO NOTHING", [item.id, project, version])
            states = {(p, v): (State(s), c, r) for p, v, s, c, r in self._execute(
                "SELECT r.project, r.version, r.state, r.failure_class, r.reason FROM requests r JOIN request_deps d "
                "ON d.project = r.project AND d.version = r.version WHERE d.request_id = ?", [item.id]).fetchall()}
            wanted = [(p, v) for p, v in dependencies]
            broken = [(p, v) for p, v in wanted if states[(p, v)][0] in (State.FAILED, State.REFUSED)]
            if broken:
                (project, version), (_, cls, why) = broken[0], states[broken[0]]
                self._fail(item.id, FailureClass.DEPENDENCY_FAILED,
                           f"build dependency {project}=={version} failed ({cls}: {why})", now, record)
                return State.FAILED
            if all(states[d][0] is State.BUILT for d in wanted):
                if set(wanted) <= before:  # it waited for them once, they were built, and still it lacks them
                    self._fail(item.id, FailureClass.DEPENDENCY_FAILED,
                               f"build dependency {wanted[0][0]}=={wanted[0][1]} was built but does not serve every "
                               "target of this build", now, record)
                    return State.FAILED
                self._execute("UPDATE requests SET state = 'queued', lease_owner = NULL, lease_expires = NULL, "
                              "attempts = attempts - 1, not_before = 0, record = ?, updated = ? WHERE id = ?",
                              [record, now, item.id])
                return State.QUEUED
            waiting_for = ", ".join(f"{p}=={v}" for p, v in wanted)
            # Waiting is not an attempt: the claim that found the dependencies missing is given back.
            self._execute("UPDATE requests SET state = 'waiting', lease_owner = NULL, lease_expires = NULL, "
                          "attempts = attempts - 1, failure_class = NULL, reason = ?, record = ?, updated = ? "
                          "WHERE id = ?", [f"waiting for {waiting_for}", record, now, item.id])
        return State.WAITING

    def _fail(self, item_id: int, failure_class: FailureClass, reason: str, now: float, record: str | None = None) -> None:
        self._execute("UPDATE requests SET state = 'failed', failure_class = ?, reason = ?, lease_owner = NULL, "
                      "lease_expires = NULL, record = COALESCE(?, record), updated = ? WHERE id = ?",
                      [str(failure_class), reason, record, now, item_id])

    def _cycle(self, item: Item, dependencies: Sequence[tuple[str, str]]) -> str | None:
        """The cycle the dependencies would close, as text, if some of them (or theirs) wait for ``item``."""
        ids = {(p, v): i for i, p, v in self._execute("SELECT id, project, version FROM requests").fetchall()}
        edges: dict[int, list[tuple[str, str]]] = {}
        for request_id, p, v in self._execute("SELECT request_id, project, version FROM request_deps").fetchall():
            edges.setdefault(request_id, []).append((p, v))
        me = (item.project, item.version)
        for start in dependencies:
            path, seen = [start], set()
            stack = [(start, path)]
            while stack:
                node, path = stack.pop()
                if node == me:
                    return " -> ".join(f"{p}=={v}" for p, v in [me, *path])
                if node in seen:
                    continue
                seen.add(node)
                for nxt in edges.get(ids.get(node, -1), []):
                    stack.append((nxt, [*path, nxt]))
        return None

    def _settle_dependents(self, project: str, version: str, state: State, failure_class: FailureClass | None,
                           reason: str | None, now: float) -> None:
        """What a finished dependency means for the items waiting for it: queued once all theirs
        are built; failed (and theirs in turn) when one failed."""
        waiting = [row[0] for row in self._execute(
            "SELECT r.id FROM requests r JOIN request_deps d ON d.request_id = r.id "
            "WHERE d.project = ? AND d.version = ? AND r.state = 'waiting'", [project, version]).fetchall()]
        for dependent in waiting:
            if state is State.BUILT:
                pending = self._execute(
                    "SELECT count(*) FROM request_deps d JOIN requests r ON d.project = r.project AND "
                    "d.version = r.version WHERE d.request_id = ? AND r.state <> 'built'", [dependent]).fetchone()[0]
                if pending == 0:
                    self._execute("UPDATE requests SET state = 'queued', not_before = 0, reason = NULL, updated = ? "
                                  "WHERE id = ?", [now, dependent])
                continue
            self._fail(dependent, FailureClass.DEPENDENCY_FAILED,
                       f"build dependency {project}=={version} failed ({failure_class}: {reason})", now)
            row = self._execute("SELECT project, version FROM requests WHERE id = ?", [dependent]).fetchone()
            self._settle_dependents(row[0], row[1], State.FAILED, FailureClass.DEPENDENCY_FAILED,
                                    f"its build dependency {project}=={version} failed", now)

    def dependencies(self, item_id: int) -> list[tuple[str, str, State]]:
        """(project, version, state) of what an item waits (or waited) for."""
        return [(p, v, State(s)) for p, v, s in self._execute(
            "SELECT d.project, d.version, COALESCE(r.state, 'queued') FROM request_deps d LEFT JOIN requests r "
            "ON d.project = r.project AND d.version = r.version WHERE d.request_id = ? ORDER BY d.project",
            [item_id]).fetchall()]

    def requeue(self, project: str | None = None, version: str | None = None, failure_class: str | None = None,
                states: Sequence[State] = (State.FAILED,), now: float | None = None) -> int:
        """Put failed items (or those in ``states``) back in the queue, e.g. after adding a recipe."""
        now = time.time() if now is None else now
        where = [f"state IN ({', '.join('?' * len(states))})"]
        args: list[Any] = [str(s) for s in states]
        for column, value in (("project", project), ("version", version), ("failure_class", failure_class)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        with self._transaction():
            requeued = self._execute(f"SELECT id, project, version FROM requests WHERE {' AND '.join(where)}",
                                     args).fetchall()
            cur = self._execute(
                "UPDATE requests SET state = 'queued', attempts = 0, not_before = 0, failure_class = NULL, "
                f"reason = NULL, updated = ? WHERE {' AND '.join(where)}",
                [now, *args],
            )
            # What failed only because of a requeued dependency waits for it again.
            for _, project, version in requeued:
                self._rewait(project, version, now)
        return cur.rowcount

    def _rewait(self, project: str, version: str, now: float) -> None:
        dependents = self._execute(
            "SELECT r.id, r.project, r.version FROM requests r JOIN request_deps d ON d.request_id = r.id "
            "WHERE d.project = ? AND d.version = ? AND r.state = 'failed' AND r.failure_class = 'dependency-failed'",
            [project, version]).fetchall()
        for dependent, p, v in dependents:
            self._execute("UPDATE requests SET state = 'waiting', failure_class = NULL, reason = ?, updated = ? "
                          "WHERE id = ?", [f"waiting for {project}=={version} again", now, dependent])
            self._rewait(p, v, now)

    # -- status -------------------------------------------------------------------------------

    def counts(self) -> dict[State, int]:
        found = dict(self._execute("SELECT state, count(*) FROM requests GROUP BY state").fetchall())
        return {state: int(found.get(str(state), 0)) for state in State}

    def top_queued(self, limit: int = 10) -> list[Item]:
        return self._items("WHERE state = 'queued' ORDER BY priority DESC, id LIMIT ?", [limit])

    def missed_targets(self) -> list[tuple[str, str, str, int]]:
        """(project, version, target, misses) of every target a client found no file for."""
        rows = self._execute("SELECT project, version, target, hits FROM request_targets ORDER BY hits DESC, project")
        return [(p, v, t, int(n)) for p, v, t, n in rows.fetchall()]

    def waiting(self, limit: int = 10) -> list[Item]:
        return self._items("WHERE state = 'waiting' ORDER BY priority DESC, id LIMIT ?", [limit])

    def recent_failures(self, limit: int = 10) -> list[Item]:
        return self._items("WHERE state IN ('failed', 'refused') ORDER BY updated DESC, id LIMIT ?", [limit])

    def failure_classes(self) -> dict[str, int]:
        rows = self._execute("SELECT failure_class, count(*) FROM requests WHERE state IN ('failed', 'refused') "
                             "GROUP BY failure_class ORDER BY count(*) DESC").fetchall()
        return {str(c): int(n) for c, n in rows}

    def requests_of(self, project: str) -> list[Item]:
        """Every request of ``project``, each version's."""
        return self._items("WHERE project = ? ORDER BY id", [project])

    def get(self, project: str, version: str) -> Item | None:
        found = self._items("WHERE project = ? AND version = ?", [project, version])
        return found[0] if found else None

    def all(self) -> list[Item]:
        return self._items("ORDER BY id")
