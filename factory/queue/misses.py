"""Miss logs: the requests a private index could not serve, read line by line.

Two formats:

- ``jsonl``: factory's own miss records, one JSON object per line, as ``factory serve`` writes
  them: ``ts`` (ISO 8601 or epoch seconds), ``kind`` (``project``, ``file`` or ``metadata``),
  ``project``, ``filename``, ``version``, ``status``, ``user_agent``, and optionally ``client``;
- ``combined``: nginx's and Apache's combined access log, where a 404 on ``/simple/<name>/`` is a
  project miss and a 404 on a distribution file (or its ``.metadata``) is a file miss whose
  version comes from the file name.

Names are normalized (PEP 503) and must be project names (PEP 508, at most ``MAX_NAME``
characters): a miss for anything else (``$(id)-1.0.tar.gz``) is a bad line, counted and never
queued. Requests for pip itself (its self-update check) are ignored.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

FORMATS = ("jsonl", "combined")
#: project: a project page; file, metadata: a distribution file or its sidecar; no-compatible-file:
#: a client whose Python or platform no file of the project serves (its target says which).
KINDS = ("project", "file", "metadata", "no-compatible-file")
IGNORED_PROJECTS = {"pip"}
_NAME = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9]", re.IGNORECASE)
_TARGET = re.compile(r"cp3\d+t?-(x86_64|aarch64|[a-z0-9_]+)")
#: The longest project name accepted: an sdist's file name holding it and a version must fit in 255 bytes.
MAX_NAME = 200
# No field may hold a newline, so the same pattern also runs over a whole buffer (re.M).
_COMBINED_LINE = (
    rb'^(?P<client>\S+) \S+ \S+ \[(?P<time>[^\]\n]+)\] "(?P<method>[A-Z]+) (?P<path>\S+)(?: [^"\n]*)?" '
    rb'(?P<status>\d{3}) (?:\d+|-)'
)
_COMBINED = re.compile(_COMBINED_LINE)
# Every well-formed line of a buffer: (client, time, path, status), the rest of the line skipped.
_COMBINED_ALL = re.compile(_COMBINED_LINE.replace(b"(?P<method>[A-Z]+)", b"[A-Z]+") + rb"[^\n]*$", re.M)
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


class Miss(NamedTuple):
    """One request the index could not serve (a tuple: logs hold millions of them)."""

    ts: float  # seconds since the epoch
    kind: str  # one of KINDS
    project: NormalizedName
    version: str | None  # None for a project miss: "the newest release"
    client: str
    filename: str | None = None
    target: str | None = None  # a no-compatible-file miss: the target it needed, e.g. cp312-x86_64


@dataclasses.dataclass(frozen=True)
class BadLine:
    """A line that is neither a miss nor a request to ignore; it never stops ingestion."""

    line: int
    reason: str
    text: str


class UnknownFormat(ValueError):
    pass


class InvalidName(ValueError):
    """A miss names something that is not a project name."""


def valid_name(name: str) -> bool:
    """Whether ``name`` is a project name (PEP 508) of at most ``MAX_NAME`` characters."""
    return len(name) <= MAX_NAME and _NAME.fullmatch(name) is not None


def detect(first_line: bytes) -> str:
    """The format of a log, from its first non-empty line."""
    stripped = first_line.lstrip()
    if stripped.startswith(b"{"):
        return "jsonl"
    if _COMBINED.match(first_line):
        return "combined"
    raise UnknownFormat("neither JSON lines nor a combined access log: name it with --format")


def _from_filename(filename: str) -> tuple[str, NormalizedName, str] | None:
    """(kind, project, version) of a distribution file name, or of its ``.metadata`` sidecar;
    None if it is not one. Raises ``InvalidName`` when it is one, of something that is not a
    project name."""
    kind = "file"
    if filename.endswith(".metadata"):
        kind, filename = "metadata", filename[: -len(".metadata")]
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    if not valid_name(name):
        raise InvalidName(f"not a project name (PEP 508, at most {MAX_NAME} characters): {name[:60]!r}")
    return kind, name, str(version)


@lru_cache(maxsize=65536)
def classify_path(path: str) -> tuple[str, NormalizedName, str | None, str | None] | None:
    """(kind, project, version, filename) for a request path, or None if it asks for no package
    (or for one whose name is not a project name)."""
    try:
        return _classify(path)
    except InvalidName:
        return None


def _classify(path: str) -> tuple[str, NormalizedName, str | None, str | None] | None:
    """:func:`classify_path`, raising ``InvalidName`` for a package with an invalid name."""
    parts = [p for p in unquote(path.split("?", 1)[0].split("#", 1)[0]).split("/") if p]
    if len(parts) >= 2 and parts[-2] in ("simple", "+simple"):
        if valid_name(parts[-1]):
            return "project", canonicalize_name(parts[-1]), None, None
        if not parts[-1].startswith("."):  # /simple/<anything>/: a project page, of something that is none
            raise InvalidName(f"not a project name (PEP 508, at most {MAX_NAME} characters): {parts[-1][:60]!r}")
    if parts and (found := _from_filename(parts[-1])):
        kind, project, version = found
        return kind, project, version, parts[-1]
    return None


def _combined_time(text: str) -> float:
    # "10/Oct/2026:13:55:36 +0000", parsed by hand: strptime costs ten times more per line.
    day, month, rest = text.split("/", 2)
    year, hh, mm, rest = rest.split(":", 3)
    ss, _, zone = rest.partition(" ")
    when = datetime.datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss), tzinfo=datetime.UTC)
    offset = 0
    if zone:
        sign = -1 if zone[0] == "-" else 1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[3:5]) * 60)
    return when.timestamp() - offset


def _iso_time(value: object) -> float:
    ts: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        ts = float(value)
    elif isinstance(value, str):
        ts = datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    if ts is None or not math.isfinite(ts):
        raise ValueError(f"`ts` must be ISO 8601 or epoch seconds, got {value!r}")
    return ts


@lru_cache(maxsize=65536)
def _classify_raw(path: bytes) -> tuple[str, NormalizedName, str | None, str | None] | None:
    found = _classify(path.decode("utf-8", "replace"))  # InvalidName goes up: a bad line, counted
    return None if found is None or found[1] in IGNORED_PROJECTS else found


def _combined_miss(client: bytes, stamp: bytes, path: bytes, times: dict[bytes, float]) -> Miss | str | None:
    """The miss a 404 line stands for, None if it asks for no package, or why it is bad (its
    time, or a name that is no project's)."""
    try:
        found = _classify_raw(path)
    except InvalidName as exc:
        return str(exc)
    if found is None:
        return None
    ts = times.get(stamp)
    if ts is None:
        try:
            ts = times[stamp] = _combined_time(stamp.decode())
        except (ValueError, KeyError, IndexError, OverflowError):
            return f"bad time {stamp.decode('utf-8', 'replace')!r}"
    kind, project, version, filename = found
    return Miss(ts, kind, project, version, client.decode("utf-8", "replace"), filename)


def parse_combined(lines: Iterable[bytes], first_line_number: int = 1) -> Iterator[Miss | BadLine]:
    """Misses (404s on packages) in a combined access log; other requests are skipped."""
    times: dict[bytes, float] = {}
    for number, raw in enumerate(lines, first_line_number):
        if not raw.strip():
            continue
        m = _COMBINED.match(raw)
        if m is None:
            yield BadLine(number, "not a combined access log line", raw[:200].decode("utf-8", "replace"))
            continue
        if m.group("status") != b"404":
            continue
        miss = _combined_miss(m.group("client"), m.group("time"), m.group("path"), times)
        if type(miss) is str:
            yield BadLine(number, miss, raw[:200].decode("utf-8", "replace"))
        elif miss is not None:
            yield miss


def parse_combined_buffer(data: bytes, first_line_number: int = 1) -> Iterator[Miss | BadLine]:
    """:func:`parse_combined` over a whole buffer: one regex pass in C finds the well-formed
    lines; only if some line is not (or has a bad time) is the buffer read again line by line,
    to number the bad lines."""
    rows = _COMBINED_ALL.findall(data)
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    if len(rows) != lines:  # a bad line (or a blank one): read line by line
        yield from parse_combined(data.split(b"\n"), first_line_number)
        return
    times: dict[bytes, float] = {}
    found = []
    for client, stamp, path, status in rows:
        if status == b"404" and (miss := _combined_miss(client, stamp, path, times)) is not None:
            if type(miss) is str:  # a bad time: let the line-by-line reader number it
                yield from parse_combined(data.split(b"\n"), first_line_number)
                return
            found.append(miss)
    yield from found


def _json_miss(data: object) -> Miss | None:
    """A miss from one of factory's own records (None for pip itself); ValueError when invalid."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {', '.join(KINDS)}, got {kind!r}")
    if "ts" not in data:
        raise ValueError("no `ts`")
    ts = _iso_time(data["ts"])
    filename = data.get("filename") or None
    version = data.get("version") or None
    project = data.get("project")
    if data.get("queued") is True:  # `factory serve` put it in the ledger as it happened
        return None
    target = None
    if kind in ("project", "no-compatible-file"):
        if not isinstance(project, str) or not valid_name(project):
            raise InvalidName(f"`project` must be a project name (PEP 508, at most {MAX_NAME} characters), "
                              f"got {str(project)[:60]!r}")
        if kind == "project":
            version = None
        else:
            target = data.get("target")
            if not isinstance(target, str) or not _TARGET.fullmatch(target):
                raise ValueError(f"`target` must name a CPython and an architecture (cp312-x86_64), got {target!r}")
    else:
        if not isinstance(filename, str) or (found := _from_filename(filename)) is None:
            raise ValueError(f"`filename` must be a distribution file name, got {filename!r}")
        _, from_file, from_name = found
        if project is not None and canonicalize_name(str(project)) != from_file:
            raise ValueError(f"`project` {project!r} does not match the file name {filename!r}")
        project, version = from_file, from_name
    if version is not None:
        version = str(Version(str(version)))
    name = canonicalize_name(project)
    if name in IGNORED_PROJECTS:
        return None
    client = str(data.get("client") or data.get("user_agent") or "")
    return Miss(ts, kind, name, version, client, filename, target)


def parse_jsonl(lines: Iterable[bytes], first_line_number: int = 1) -> Iterator[Miss | BadLine]:
    """Misses in factory's own JSON-lines miss log."""
    for number, raw in enumerate(lines, first_line_number):
        if not raw.strip():
            continue
        try:
            miss = _json_miss(json.loads(raw))
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # JSON, time, name or version
            yield BadLine(number, str(exc)[:200] or type(exc).__name__, raw[:200].decode("utf-8", "replace"))
            continue
        if miss is not None:
            yield miss


PARSERS = {"jsonl": parse_jsonl, "combined": parse_combined}


def parse_buffer(fmt: str, data: bytes, first_line_number: int = 1) -> Iterator[Miss | BadLine]:
    """Every miss and bad line of a whole input in format ``fmt``."""
    if fmt == "combined":
        return parse_combined_buffer(data, first_line_number)
    return parse_jsonl(data.split(b"\n"), first_line_number)
