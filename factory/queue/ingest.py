"""Turn miss logs into build requests: aggregated, deduplicated, idempotent by content.

Misses aggregate into requests (a project and a version, or ``latest`` for a project-page miss)
with their hit count, distinct clients, and first and last time seen; the ledger then queues
the new ones and raises the priority of the known ones. Bad lines never stop ingestion: they are
counted and reported with their file and line number (``strict`` makes them an error, and then
nothing is recorded). Ingesting the same bytes again adds nothing; a log that grew since it was
ingested adds only its new lines.
"""

from __future__ import annotations

import dataclasses
import hashlib

from factory.failures import FactoryError
from factory.queue import misses
from factory.queue.ledger import LATEST, Conflict, Demand, Ledger

HEAD = 4096  # at most this much of the first line identifies a log as one ingested before, grown


class IngestError(FactoryError):
    """The input cannot be ingested (unknown format, or bad lines under --strict)."""


@dataclasses.dataclass(frozen=True)
class Report:
    """What one input added."""

    source: str
    format: str
    lines: int  # lines read (after the part ingested before)
    misses: int
    requests: int  # distinct requests the misses aggregate into
    new: int  # of which the ledger did not know yet
    bad: tuple[misses.BadLine, ...]  # every bad line
    skipped_bytes: int  # already ingested before


def _digest(data: memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def aggregate(events: list[misses.Miss]) -> list[Demand]:
    """One demand per (project, version or latest), with the targets clients missed."""
    table: dict[tuple[str, str], list] = {}
    for ts, _, project, version, client, _, target in events:
        key = (project, version or LATEST)
        entry = table.get(key)
        if entry is None:
            entry = table[key] = [0, set(), ts, ts, {}]
        entry[0] += 1
        entry[1].add(client)
        if ts < entry[2]:
            entry[2] = ts
        elif ts > entry[3]:
            entry[3] = ts
        if target is not None:
            entry[4][target] = entry[4].get(target, 0) + 1
    return [Demand(p, v, hits, frozenset(clients), first, last, targets)
            for (p, v), (hits, clients, first, last, targets) in table.items()]


def ingest(ledger: Ledger, source: str, data: bytes, fmt: str | None = None, strict: bool = False) -> Report:
    """Ingest one input (the bytes of a file, or of stdin) named ``source`` in reports.

    Only complete lines count: a last line without its newline (a log being written) waits for
    the next ingest."""
    data = data[: data.rfind(b"\n") + 1]
    for attempt in (1, 2):
        try:
            return _ingest(ledger, source, data, fmt, strict)
        except Conflict:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _ingest(ledger: Ledger, source: str, data: bytes, fmt: str | None, strict: bool) -> Report:
    view = memoryview(data)
    newline = data.find(b"\n", 0, HEAD)
    head = _digest(view[: newline + 1 if newline >= 0 else HEAD])  # a log keeps its first line as it grows
    offset = 0
    seen = ledger.ingested_prefixes(head)  # of this log, or of others that begin with the same line
    for size, digest in seen:
        if size <= len(data) and _digest(view[:size]) == digest:
            offset = size
            break
    first = next((line for line in data[:65536].split(b"\n") if line.strip()), b"")
    if fmt is None:
        try:
            fmt = misses.detect(first) if first else "jsonl"
        except misses.UnknownFormat as exc:
            raise IngestError(f"{source}: {exc}") from None
    if offset == len(data):
        return Report(source, fmt, 0, 0, 0, 0, (), offset)
    body = data[offset:]
    first_number = data.count(b"\n", 0, offset) + 1
    events: list[misses.Miss] = []
    bad: list[misses.BadLine] = []
    for item in misses.parse_buffer(fmt, body, first_number):
        if isinstance(item, misses.BadLine):
            bad.append(item)
        else:
            events.append(item)
    lines = body.count(b"\n")
    if strict and bad:
        shown = "; ".join(f"{source}:{b.line}: {b.reason}" for b in bad[:5])
        raise IngestError(f"{len(bad)} bad lines, nothing ingested (without --strict they are skipped): {shown}")
    demands = aggregate(events)
    new, _ = ledger.add(demands, ingested=(head, len(data), _digest(view)), seen=seen)
    return Report(source, fmt, lines, len(events), len(demands), new, tuple(bad), offset)
