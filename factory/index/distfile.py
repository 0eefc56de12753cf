"""What the index needs to know about a file it publishes (a wheel, or the sdist it was built
from): hashes, size, and its core metadata; and that a wheel is what its file name says (the
index is immutable: a wheel published under a name its metadata contradicts could never be
replaced, and installers refuse it)."""

from __future__ import annotations

import dataclasses
import email.parser
import hashlib
import tarfile
import zipfile
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from factory.failures import FactoryError
from factory.plumbing.files import sha256_file


@dataclasses.dataclass(frozen=True)
class DistFile:
    """A wheel, or an sdist, about to be published."""

    path: Path
    project: NormalizedName
    version: str
    sha256: str
    size: int
    requires_python: str | None
    metadata: bytes | None  # METADATA (PKG-INFO) byte for byte: the PEP 658 sidecar; None: none that holds
    bundle: bytes | None = None  # its Sigstore bundle (<wheel>.sigstore.json), once signed
    provenance: bytes | None = None  # its PEP 740 provenance object, once signed

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def metadata_sha256(self) -> str | None:
        return hashlib.sha256(self.metadata).hexdigest() if self.metadata is not None else None


class WheelMismatch(FactoryError):
    """A wheel is not what its file name says: its .dist-info directory or its METADATA names
    another project or version."""


def _same_version(a: str, b: Version) -> bool:
    try:
        return Version(a) == b
    except InvalidVersion:
        return False


def inspect_wheel(path: Path) -> DistFile:
    """Read a wheel's name, version and core metadata, and check them against its file name.

    Raises ``WheelMismatch`` when its one .dist-info directory, or its METADATA's ``Name`` and
    ``Version``, are of another project or version than the file name's."""
    try:
        project, version, _, _ = parse_wheel_filename(path.name)
    except ValueError as exc:
        raise FactoryError(f"{path.name}: not a wheel file name: {exc}") from None
    try:
        with zipfile.ZipFile(path) as zf:
            dist_infos = {n.split("/", 1)[0] for n in zf.namelist() if n.split("/", 1)[0].endswith(".dist-info")}
            names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1 or len(dist_infos) != 1:
                raise WheelMismatch(f"{path.name}: expected one .dist-info directory with a METADATA, found "
                                    f"{len(dist_infos)} directories and {len(names)} METADATA files")
            metadata = zf.read(names[0])
    except zipfile.BadZipFile as exc:
        raise FactoryError(f"{path.name}: not a valid wheel: {exc}") from None
    headers = email.parser.BytesHeaderParser().parsebytes(metadata)
    directory = names[0].split("/", 1)[0].removesuffix(".dist-info")
    dir_name, _, dir_version = directory.rpartition("-")
    said = {"its .dist-info directory": (dir_name, dir_version),
            "its METADATA": (headers.get("Name", ""), headers.get("Version", ""))}
    for where, (name, claimed) in said.items():
        if canonicalize_name(name) != project or not _same_version(claimed, version):
            raise WheelMismatch(f"{path.name}: {where} says {name or '?'} {claimed or '?'}, the file name "
                                f"{project} {version}: refused (the index is immutable; rebuild it right)")
    return DistFile(
        path=path,
        project=project,
        version=str(version),
        sha256=sha256_file(path),
        size=path.stat().st_size,
        requires_python=headers.get("Requires-Python") or None,
        metadata=metadata,
    )


#: Core metadata whose fields hold unless marked Dynamic (PEP 643): an sdist's PKG-INFO is then
#: as good as its wheel's METADATA for resolving.
_STATIC_METADATA = Version("2.2")


def inspect_sdist(path: Path) -> DistFile:
    """Read an sdist's name, version and PKG-INFO. Its PKG-INFO is offered as the PEP 658
    sidecar only where installers may trust it: Metadata-Version 2.2 or later (PEP 643), and
    neither its dependencies nor its Python requirement marked Dynamic."""
    try:
        project, version = parse_sdist_filename(path.name)
    except InvalidSdistFilename as exc:
        raise FactoryError(f"{path.name}: not an sdist file name: {exc}") from None
    pkg_info = _pkg_info(path)
    headers = email.parser.BytesHeaderParser().parsebytes(pkg_info)
    if canonicalize_name(headers.get("Name", "")) != project or not _same_version(headers.get("Version", ""), version):
        raise WheelMismatch(f"{path.name}: its PKG-INFO says {headers.get('Name')} {headers.get('Version')}, the file "
                            f"name {project} {version}")
    try:
        static = Version(headers.get("Metadata-Version", "1.0")) >= _STATIC_METADATA
    except InvalidVersion:
        static = False
    dynamic = {d.strip().lower() for d in headers.get_all("Dynamic", [])}
    trusted = static and not dynamic & {"requires-dist", "requires-python", "provides-extra"}
    return DistFile(path=path, project=project, version=str(version), sha256=sha256_file(path),
                    size=path.stat().st_size, requires_python=headers.get("Requires-Python") or None,
                    metadata=pkg_info if trusted else None)


def _pkg_info(path: Path) -> bytes:
    """The PKG-INFO at the top of an sdist (``<name>-<version>/PKG-INFO``)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                name = next(n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/PKG-INFO"))
                return zf.read(name)
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = [p for p in member.name.split("/") if p not in ("", ".")]
                if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                    data = tar.extractfile(member)
                    if data is not None:
                        return data.read()
    except (tarfile.TarError, zipfile.BadZipFile, OSError, StopIteration):
        pass
    raise FactoryError(f"{path.name}: no PKG-INFO at the top of the sdist")


def core_metadata(path: Path) -> bytes:
    """A distribution file's core metadata, whatever an index offers of it: a wheel's METADATA,
    an sdist's PKG-INFO."""
    if path.name.endswith(".whl"):
        try:
            with zipfile.ZipFile(path) as zf:
                name = next(n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
                return zf.read(name)
        except (zipfile.BadZipFile, OSError, StopIteration):
            raise FactoryError(f"{path.name}: no .dist-info/METADATA in the wheel") from None
    return _pkg_info(path)
