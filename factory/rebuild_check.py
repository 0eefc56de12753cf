"""``factory rebuild-check``: build a published release again, in a fresh work directory, and
compare the wheels byte for byte with the ones the index serves.

The rebuild uses the same inputs the first build did: the same sdist (hash-checked), the same
recipe, the same builder image, and the same build requirements (resolved as of the release's
day, so the same pins, from factory's own index), offline, with ``SOURCE_DATE_EPOCH`` from the
sdist. When a wheel differs, the members that differ are named.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from factory.config import Config
from factory.failures import FactoryError
from factory.index.manifest import FileEntry, Manifest
from factory.pipeline.record import BuildRecord, BuildStatus
from factory.pipeline.request import BuildRequest
from factory.pipeline.run import run
from factory.plumbing.files import sha256_file


@dataclasses.dataclass(frozen=True)
class WheelComparison:
    """One rebuilt wheel against the index's wheel of the same name."""

    filename: str
    published_sha256: str | None  # None: the index has no wheel of that name
    rebuilt_sha256: str
    differences: tuple[str, ...]  # the members that differ, and how

    @property
    def identical(self) -> bool:
        return self.published_sha256 == self.rebuilt_sha256


@dataclasses.dataclass(frozen=True)
class RebuildReport:
    record: BuildRecord
    wheels: tuple[WheelComparison, ...]

    @property
    def identical(self) -> bool:
        return self.record.status is BuildStatus.BUILT and bool(self.wheels) and all(w.identical for w in self.wheels)


def differences(published: Path, rebuilt: Path) -> tuple[str, ...]:
    """What differs between two wheels, member by member: present in one only, other bytes,
    or other zip metadata (time, permissions, order)."""
    with zipfile.ZipFile(published) as a, zipfile.ZipFile(rebuilt) as b:
        left = {i.filename: i for i in a.infolist()}
        right = {i.filename: i for i in b.infolist()}
        found = [f"{name}: only in the published wheel" for name in sorted(left.keys() - right.keys())]
        found += [f"{name}: only in the rebuilt wheel" for name in sorted(right.keys() - left.keys())]
        for name in sorted(left.keys() & right.keys()):
            x, y = left[name], right[name]
            if a.read(name) != b.read(name):
                found.append(f"{name}: different contents ({x.file_size} and {y.file_size} bytes)")
            elif x.date_time != y.date_time:
                found.append(f"{name}: different time ({_when(x.date_time)} and {_when(y.date_time)})")
            elif x.external_attr != y.external_attr:
                found.append(f"{name}: different permissions ({x.external_attr >> 16:o} and {y.external_attr >> 16:o})")
            elif x.compress_type != y.compress_type:
                found.append(f"{name}: compressed differently")
        if not found and [i.filename for i in a.infolist()] != [i.filename for i in b.infolist()]:
            found.append("the members are in a different order")
        if not found:
            found.append("the archives differ outside their members (compression level or zip headers)")
    return tuple(found)


def _when(t: tuple[int, ...]) -> str:
    return "%04d-%02d-%02d %02d:%02d:%02d" % t


def _floor(config: Config, published: Iterable[FileEntry]) -> str | None:
    """The floor the published build was resolved with (a build dependency's: the release that
    needed it), from its provenance: the rebuild must resolve the same pins."""
    for entry in published:
        bundle = (config.index_dir / entry.path).with_name(entry.filename + ".sigstore.json")
        try:
            envelope = json.loads(bundle.read_text())["dsseEnvelope"]
            statement = json.loads(base64.b64decode(envelope["payload"]))
            parameters = statement["predicate"]["buildDefinition"]["internalParameters"]
        except (OSError, ValueError, KeyError):
            continue
        return parameters.get("buildRequirements", {}).get("floor")
    return None


def rebuild_check(request: BuildRequest, config: Config, say: Callable[[str], None] = lambda _: None) -> RebuildReport:
    """Rebuild ``request`` (which must be in the index) and compare its wheels with the index's."""
    if request.version is None:
        raise FactoryError(f"{request}: name one version to check, as in {request.project}==1.2.3")
    manifest = Manifest.existing(config.index_dir)
    if manifest is None:
        raise FactoryError(f"{config.index_dir}: nothing is published here, so there is nothing to rebuild")
    with manifest:
        published = {e.filename: e for e in manifest.files(request.project) if e.version == str(request.version)}
    if not published:
        raise FactoryError(f"{request} is not in the index: build it first")
    with tempfile.TemporaryDirectory(dir=config.work_dir.parent if config.work_dir.parent.exists() else None,
                                     prefix="rebuild-") as scratch:
        out = Path(scratch) / "wheels"
        record = run(request, config, say, rebuild_into=out, floor=_floor(config, published.values()))
        wheels = []
        for path in sorted(out.glob("*.whl")) if out.is_dir() else []:
            entry = published.get(path.name)
            rebuilt = sha256_file(path)
            if entry is None:
                wheels.append(WheelComparison(path.name, None, rebuilt, ("the index has no wheel of this name",)))
                continue
            same = entry.sha256 == rebuilt
            diff = () if same else differences(config.index_dir / entry.path, path)
            wheels.append(WheelComparison(path.name, entry.sha256, rebuilt, diff))
    return RebuildReport(record, tuple(wheels))
