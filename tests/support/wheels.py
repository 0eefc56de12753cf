"""Make small, valid pure-Python wheels by hand, for index tests that need no build."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(dest: Path, name: str, version: str, *, requires_python: str | None = ">=3.8",
               body: str = "", build_tag: str | None = None, tag: str = "py3-none-any",
               requires: tuple[str, ...] = ()) -> Path:
    """A wheel of module ``<name>`` whose ``VALUE`` is ``body``, tagged ``tag`` (what it claims to
    serve: a hand-made wheel, platform tags are only names here), needing ``requires``."""
    dist = name.replace("-", "_")
    build = f"-{build_tag}" if build_tag else ""
    path = dest / f"{dist}-{version}{build}-{tag}.whl"
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if requires_python:
        metadata += f"Requires-Python: {requires_python}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{dist}/__init__.py": f"VALUE = {body!r}\n".encode(),
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: factory-tests\n"
                          f"Root-Is-Purelib: {'true' if tag == 'py3-none-any' else 'false'}\nTag: {tag}\n"
                          + (f"Build: {build_tag}\n" if build_tag else "")).encode(),
    }
    record = "".join(f"{n},{_record_hash(d)},{len(d)}\n" for n, d in files.items()) + f"{info}/RECORD,,\n"
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:  # fixed times: the same arguments make the same bytes
        for n, d in [*files.items(), (f"{info}/RECORD", record.encode())]:
            zf.writestr(zipfile.ZipInfo(n, date_time=(2026, 1, 1, 0, 0, 0)), d)
    return path
