"""Write the status site from what factory knows: the queue (when there is one), the build
records, and the index's manifest. ``update`` rewrites the front page and the pages of the
projects just built (what a build or a worker calls after each build); ``rebuild`` writes them
all. Pages are written atomically, so a reader never sees half a page; records and logs are
copied beside them (``status/records/<project>/``), as the pages link them."""

from __future__ import annotations

import datetime
import shutil
import time
from collections.abc import Iterable

from factory.config import Config
from factory.index.manifest import Manifest, coverage, missing_targets
from factory.pipeline.record import BuildRecord, load_all
from factory.plumbing.files import write_text
from factory.queue.ledger import Ledger, LedgerError, State, weight
from factory.status import render
from factory.targets import every_target, serves

#: The builds a project page shows, newest first.
BUILDS_SHOWN = 30
#: The builds the front page lists.
RECENT = 15


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _when(ts: float | None) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if ts else ""


def _ledger(config: Config) -> Ledger | None:
    """The queue, if there is one (a factory that only ever ran `factory build` has none)."""
    if not config.queue_url and not (config.state_dir / "queue.sqlite3").exists():
        return None
    try:
        return Ledger.open(config)
    except LedgerError:
        return None


def update(config: Config, projects: Iterable[str] = ()) -> None:
    """Rewrite the front page, and the pages of ``projects``."""
    for project in dict.fromkeys(projects):
        _write_project(config, project)
    _write_overview(config)


def rebuild(config: Config) -> int:
    """Write every page; returns how many projects have one."""
    projects = {p.name for p in config.records_dir.glob("*") if p.is_dir()}
    manifest = Manifest.existing(config.index_dir)
    if manifest is not None:
        with manifest:
            projects |= set(manifest.projects())
    update(config, sorted(projects))
    return len(projects)


def _write_overview(config: Config) -> None:
    now = time.time()
    counts: dict[str, int] = {}
    wanted, building, waiting, failures, missed = [], [], [], [], []
    ledger = _ledger(config)
    if ledger is not None:
        with ledger:
            counts = {str(s): n for s, n in ledger.counts().items()}
            wanted = [(i.spec, i.project, round(weight(i.priority, now), 2), i.origin or "misses")
                      for i in ledger.top_queued(10)]
            building = [(i.spec, i.project, _when(i.updated)) for i in ledger.all() if i.state is State.BUILDING]
            waiting = [(i.spec, ", ".join(f"{p}=={v} ({s})" for p, v, s in ledger.dependencies(i.id)))
                       for i in ledger.waiting(10)]
            failures = [(i.spec, i.failure_class or "", i.reason or "", _when(i.updated))
                        for i in ledger.recent_failures(10)]
            missed = missing_targets(config.index_dir, ledger.missed_targets())[:10]
    recent_paths = sorted(config.records_dir.glob("*/*.json"), key=lambda p: p.name, reverse=True)[:RECENT]
    recent = []
    for path in recent_paths:
        try:
            record = BuildRecord.from_json(path.read_text())
        except (OSError, ValueError, KeyError):
            continue
        recent.append((record.project or path.parent.name, record.version or "", str(record.status), record.finished,
                       record.id))
    covered = coverage(config.index_dir, config.image_pythons, config.archs)
    per_target = {str(t): (sum(1 for _, pythons in covered.values() if t.arch in pythons[t.python]), len(covered))
                  for t in every_target(config.archs, config.image_pythons)}
    html = render.overview(counts, wanted, building, waiting, recent, failures, per_target if covered else {}, missed,
                           _now())
    write_text(config.status_dir / "index.html", html)


def _write_project(config: Config, project: str) -> None:
    records = list(reversed(load_all(config.records_dir, project)))[:BUILDS_SHOWN]
    entries = []
    manifest = Manifest.existing(config.index_dir)
    if manifest is not None:
        with manifest:
            entries = manifest.files(project)
    provenance = {e.filename: f"../../{e.provenance}" for e in entries if e.provenance}
    by_version: dict[str, list[str]] = {}
    for entry in entries:
        by_version.setdefault(entry.version, []).append(entry.filename)
    targets = every_target(config.archs, config.image_pythons)
    versions = [(v, [(str(t), "") for t in targets if any(serves(f, t) for f in files if f.endswith(".whl"))])
                for v, files in sorted(by_version.items(), reverse=True)]
    rows = [_row(config, project, record, provenance) for record in records]
    write_text(config.status_dir / "projects" / f"{project}.html", render.project(project, versions, rows, _now()))


def _row(config: Config, project: str, record: BuildRecord, provenance: dict[str, str]) -> render.Row:
    """One build, its record and log copied beside the pages (they live in the state directory)."""
    here = config.status_dir / "records" / project
    source = config.records_dir / project / f"{record.id}.json"
    log = source.with_suffix(".log")
    for path in (source, log):
        copy = here / path.name
        if path.is_file() and (not copy.is_file() or copy.stat().st_size != path.stat().st_size):
            here.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
    return render.Row(
        build_id=record.id, version=record.version or "", status=str(record.status), finished=record.finished,
        targets=tuple((str(t.target), str(t.status), str(t.failure_class or ""), t.reason or "") for t in record.targets),
        failure_class=str(record.failure_class or ""), reason=record.reason or "",
        record=f"../records/{project}/{record.id}.json", log=f"../records/{project}/{record.id}.log"
        if log.is_file() else None,
        provenance=tuple((w, provenance[w]) for w in record.published if w in provenance),
    )
