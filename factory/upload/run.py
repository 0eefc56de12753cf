"""Upload what the index holds into a hosted repository: only what it lacks, idempotent, and
resumable after a crash.

The repository's own pages are the truth: a file it lists with our sha256 is there, one it
lists with other bytes is a conflict (nothing is overwritten), and everything else is sent. A
journal in the state directory (one JSON line per file the repository accepted, appended with
one write, a torn last line ignored) covers repositories whose pages lag behind their uploads
(Artifactory and Nexus compute their indexes in the background): a file the repository says it
holds already, and that the journal says we sent with these bytes, is there. An interrupted run
is resumed by running it again.

Yanked files are not sent (the upload API cannot say yanked); a yanked file the repository
offers is reported, for someone to yank or remove it there. Quarantined projects (PEP 792) are
not sent at all.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import enum
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name

from factory.config import Config
from factory.failures import FactoryError
from factory.index.distfile import core_metadata
from factory.index.manifest import FileEntry, Manifest
from factory.upload import credentials as creds
from factory.upload.form import fields
from factory.upload.target import Answer, Target, TargetError


class Result(enum.StrEnum):
    UPLOADED = "uploaded"
    PRESENT = "present"  # the repository has it already
    CONFLICT = "conflict"  # the repository has other bytes under the name
    FAILED = "failed"  # the repository refused it, or could not be reached
    YANKED = "yanked"  # yanked here, offered there


@dataclasses.dataclass(frozen=True)
class Outcome:
    filename: str
    project: str
    result: Result
    detail: str = ""
    attestations: str = ""  # "sent", "refused" (the file went without them), or "" (none to send)


@dataclasses.dataclass(frozen=True)
class Selection:
    """What to upload: every file of the index, narrowed to ``projects``, to files published at
    or after ``since`` (ISO 8601, UTC), and to ``files`` (names), where given."""

    projects: tuple[str, ...] = ()
    since: str | None = None
    files: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class UploadReport:
    target: str
    outcomes: tuple[Outcome, ...]

    def count(self, result: Result) -> int:
        return sum(o.result is result for o in self.outcomes)

    @property
    def problems(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.result in (Result.CONFLICT, Result.FAILED, Result.YANKED))

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def summary(self) -> str:
        refused = sum(o.attestations == "refused" for o in self.outcomes)
        text = (f"{self.target}: {self.count(Result.UPLOADED)} uploaded, {self.count(Result.PRESENT)} already there, "
                f"{self.count(Result.CONFLICT)} conflicts, {self.count(Result.FAILED)} failed")
        if self.count(Result.YANKED):
            text += f", {self.count(Result.YANKED)} yanked here but offered there"
        if refused:
            text += f"; {refused} sent without their attestations (the repository refused them)"
        return text


class SelectionError(FactoryError):
    """``--project`` or ``--since`` names nothing that can be selected."""


def parse_since(text: str) -> str:
    """``2026-11-01`` or ``2026-11-01T12:00:00Z`` (or with an offset) -> the manifest's format."""
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SelectionError(f"--since {text!r} is not an ISO 8601 date or time (e.g. 2026-11-01 or "
                             "2026-11-01T12:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def journal_path(state_dir: Path, target: str) -> Path:
    """The journal of uploads to ``target`` (one per repository URL)."""
    return state_dir / "upload" / (hashlib.sha256(target.encode()).hexdigest()[:16] + ".jsonl")


class Journal:
    """What a repository accepted from us: one JSON line per file, appended in one write."""

    def __init__(self, path: Path, target: str) -> None:
        self.path, self.target = path, target
        self.sent: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                    self.sent[record["filename"]] = record["sha256"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash: that file is asked about again
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(self, filename: str, sha256: str) -> None:
        line = json.dumps({"filename": filename, "sha256": sha256, "target": self.target,
                           "ts": datetime.datetime.now(datetime.UTC).isoformat()}) + "\n"
        os.write(self._fd, line.encode())
        self.sent[filename] = sha256

    def close(self) -> None:
        os.close(self._fd)


def select(index_dir: Path, selection: Selection) -> tuple[list[FileEntry], set[str]]:
    """The index's files to consider, by project then name; and the quarantined projects."""
    manifest = Manifest.existing(index_dir)
    if manifest is None:
        raise SelectionError(f"{index_dir}: no index here (nothing was ever published)")
    wanted = {canonicalize_name(p) for p in selection.projects}
    with manifest:
        statuses = manifest.statuses()
        known = set(manifest.projects())
        if missing := sorted(wanted - known):
            raise SelectionError(f"--project {', '.join(missing)}: not in the index at {index_dir}")
        since = parse_since(selection.since) if selection.since else None
        names = set(selection.files)
        entries = [e for e in manifest.all_files()
                   if (not wanted or e.project in wanted) and (since is None or e.upload_time >= since)
                   and (not names or e.filename in names)]
    quarantined = {p for p, s in statuses.items() if s.status == "quarantined"}
    return [e for e in entries if e.project not in quarantined], quarantined


def upload(index_dir: Path, state_dir: Path, repository_url: str, selection: Selection = Selection(), *,
           simple_url: str | None = None, credentials: creds.Credentials | None = None,
           environ: dict[str, str] | None = None, jobs: int = 4, timeout: float = 60.0,
           say: Callable[[str], None] | None = None) -> UploadReport:
    """Upload the selected files of the index at ``index_dir`` that the repository at
    ``repository_url`` lacks. Credentials come from ``credentials``, else the environment or a
    netrc file (see ``credentials.find``). Raises ``TargetError`` when the repository cannot
    be used at all (nothing is then reported done)."""
    say = say or (lambda _: None)
    entries, _ = select(index_dir, selection)
    found = credentials or creds.find(repository_url, os.environ if environ is None else environ)
    target_name = creds.without_userinfo(repository_url)
    with Target(repository_url, found, simple_url, timeout) as target:
        journal = Journal(journal_path(state_dir, target_name), target_name)
        try:
            return UploadReport(target_name, tuple(_run(index_dir, entries, target, journal, jobs, say)))
        finally:
            journal.close()


def _run(index_dir: Path, entries: list[FileEntry], target: Target, journal: Journal, jobs: int,
         say: Callable[[str], None]) -> list[Outcome]:
    projects = sorted({e.project for e in entries})
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        listings = dict(zip(projects, pool.map(lambda p: target.listing(NormalizedName(p)), projects)))
        outcomes: list[Outcome] = []
        todo: list[FileEntry] = []
        for entry in entries:
            listed = listings[entry.project]
            if entry.filename in listed:
                outcomes.append(_listed(entry, listed[entry.filename]))
            elif entry.yanked is None:
                todo.append(entry)
        say(f"{len(todo)} of {len(entries)} files to upload to {target.upload_url}")
        futures = [pool.submit(_send, index_dir, entry, target, journal) for entry in todo]
        for future in concurrent.futures.as_completed(futures):
            try:
                outcome = future.result()
            except TargetError:  # credentials refused: nothing more is sent, and nothing is reported done
                for pending in futures:
                    pending.cancel()
                raise
            say(f"{outcome.result} {outcome.filename}{': ' + outcome.detail if outcome.detail else ''}")
            outcomes.append(outcome)
    return sorted(outcomes, key=lambda o: (o.project, o.filename))


def _listed(entry: FileEntry, sha256: str | None) -> Outcome:
    """A file the repository lists under our file name."""
    if sha256 is not None and sha256.lower() != entry.sha256:
        return Outcome(entry.filename, entry.project, Result.CONFLICT,
                       f"the repository holds other bytes under this name (sha256 {sha256}, ours {entry.sha256}): "
                       "remove its file, or keep it and leave ours out (--project)")
    if entry.yanked is not None:
        return Outcome(entry.filename, entry.project, Result.YANKED,
                       "yanked in this index but offered by the repository: yank or remove it there")
    return Outcome(entry.filename, entry.project, Result.PRESENT,
                   "" if sha256 else "listed without a hash: taken as ours")


def _send(index_dir: Path, entry: FileEntry, target: Target, journal: Journal) -> Outcome:
    path = index_dir / entry.path
    try:
        sidecar = index_dir / entry.metadata_path
        metadata = sidecar.read_bytes() if entry.metadata_sha256 and sidecar.is_file() else core_metadata(path)
        attestations = _attestations(index_dir, entry)
        form = fields(entry.filename, metadata, entry.sha256)
    except (OSError, FactoryError, ValueError) as exc:
        return Outcome(entry.filename, entry.project, Result.FAILED, f"cannot read it from the index: {exc}")
    sent = "sent" if attestations else ""
    response = target.upload(path, form, attestations)
    if response.answer is Answer.ATTESTATIONS_REFUSED:
        sent = "refused"
        response = target.upload(path, form, None)
    if response.answer is Answer.UPLOADED:
        journal.record(entry.filename, entry.sha256)
        return Outcome(entry.filename, entry.project, Result.UPLOADED, attestations=sent)
    if response.answer is Answer.EXISTS:
        if journal.sent.get(entry.filename) == entry.sha256:  # we sent these bytes; its pages lag
            return Outcome(entry.filename, entry.project, Result.PRESENT, "sent before (its pages do not list it yet)")
        try:
            listed = target.listing(NormalizedName(entry.project))
        except TargetError:
            listed = {}
        if entry.filename in listed:
            return _listed(entry, listed[entry.filename])
        return Outcome(entry.filename, entry.project, Result.CONFLICT,
                       f"the repository says it holds this name already ({response.status}: {response.text}), "
                       "but does not list it: check it there")
    return Outcome(entry.filename, entry.project, Result.FAILED, f"{response.status}: {response.text}",
                   attestations=sent)


def _attestations(index_dir: Path, entry: FileEntry) -> list[object] | None:
    """The PEP 740 attestations of a file (from its provenance), or None when it has none."""
    if entry.provenance is None:
        return None
    provenance = json.loads((index_dir / entry.provenance).read_text())
    found = [a for bundle in provenance.get("attestation_bundles", []) for a in bundle.get("attestations", [])]
    return found or None


def after_publish(cfg: Config, filenames: Iterable[str], say: Callable[[str], None] | None = None) -> UploadReport | None:
    """The farm's hook: after a publish, upload the files it published to the repository of the
    ``upload-to`` setting. None when ``upload-to`` is empty or nothing was published; raises
    ``TargetError`` when the repository cannot be used (a later call, or ``factory upload``,
    sends what this one could not: the repository's pages say what it lacks)."""
    names = tuple(filenames)
    if not cfg.upload_to or not names:
        return None
    return upload(cfg.index_dir, cfg.state_dir, cfg.upload_to, Selection(files=names),
                  simple_url=cfg.upload_simple_url or None, timeout=cfg.http_timeout, say=say)
