"""What the index needs to know about a wheel: hashes, size, and its core metadata."""

from __future__ import annotations

import dataclasses
import email.parser
import hashlib
import zipfile
from pathlib import Path

from packaging.utils import NormalizedName, parse_wheel_filename

from factory.failures import FactoryError
from factory.plumbing.files import sha256_file


@dataclasses.dataclass(frozen=True)
class DistFile:
    """A wheel about to be published."""

    path: Path
    project: NormalizedName
    version: str
    sha256: str
    size: int
    requires_python: str | None
    metadata: bytes  # the wheel's METADATA, byte for byte: the PEP 658 sidecar
    bundle: bytes | None = None  # its Sigstore bundle (<wheel>.sigstore.json), once signed
    provenance: bytes | None = None  # its PEP 740 provenance object, once signed

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def metadata_sha256(self) -> str:
        return hashlib.sha256(self.metadata).hexdigest()


def inspect_wheel(path: Path) -> DistFile:
    """Read a wheel's name, version and core metadata."""
    try:
        project, version, _, _ = parse_wheel_filename(path.name)
    except ValueError as exc:
        raise FactoryError(f"{path.name}: not a wheel file name: {exc}") from None
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                raise FactoryError(f"{path.name}: expected one .dist-info/METADATA, found {len(names)}")
            metadata = zf.read(names[0])
    except zipfile.BadZipFile as exc:
        raise FactoryError(f"{path.name}: not a valid wheel: {exc}") from None
    headers = email.parser.BytesHeaderParser().parsebytes(metadata)
    return DistFile(
        path=path,
        project=project,
        version=str(version),
        sha256=sha256_file(path),
        size=path.stat().st_size,
        requires_python=headers.get("Requires-Python") or None,
        metadata=metadata,
    )
