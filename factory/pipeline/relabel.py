"""Remediated builds: a wheel built with a recipe's security patches is published under a PEP 440
local version label (``1.2.3+factory.1``), so that users and ``factory verify`` can tell it from
the plain rebuild, while ``==1.2.3`` still selects it.

The project's own build knows nothing of the label, so the wheel is relabelled after it is built
and repaired: its file name, its ``.dist-info`` directory, the ``Version`` in its METADATA and
its RECORD. The members keep their order and their zip metadata, so a relabelled rebuild is as
reproducible as the build.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path

from packaging.utils import parse_wheel_filename
from packaging.version import Version

from factory.failures import BuildFailure, FailureClass


def local_version(version: Version, label: str, remediation: int) -> Version:
    """``1.2.3`` -> ``1.2.3+factory.1``."""
    return Version(f"{version.public}+{label}.{remediation}")


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def relabel(wheel: Path, version: Version, dest: Path) -> Path:
    """A copy of ``wheel`` in ``dest`` whose version is ``version`` (the wheel's own plus a local
    label); the original is left as it was."""
    _, old, _, _ = parse_wheel_filename(wheel.name)
    if old != Version(version.public):
        raise BuildFailure(FailureClass.POLICY, f"{wheel.name} is version {old}, not {version.public}")
    parts = wheel.name.split("-")
    distribution = parts[0]
    filename = "-".join([distribution, str(version).replace("-", "_"), *parts[2:]])
    old_info, new_info = f"{distribution}-{parts[1]}.dist-info/", f"{distribution}-{version}.dist-info/"
    dest.mkdir(parents=True, exist_ok=True)
    out_path = dest / filename
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(out_path, "w") as out:
        members = source.infolist()
        if not any(m.filename.startswith(old_info) for m in members):
            raise BuildFailure(FailureClass.POLICY, f"{wheel.name} has no {old_info} directory")
        contents: dict[str, tuple[zipfile.ZipInfo, bytes]] = {}
        for info in members:
            data = source.read(info)
            new_name = new_info + info.filename[len(old_info):] if info.filename.startswith(old_info) else info.filename
            if new_name == new_info + "METADATA":
                data = re.sub(rb"^Version: .*$", f"Version: {version}".encode(), data, count=1, flags=re.M)
            contents[new_name] = (info, data)
        record_name = new_info + "RECORD"
        lines = [f"{n},{_record_hash(d)},{len(d)}" for n, (_, d) in contents.items() if n != record_name]
        contents[record_name] = (contents[record_name][0], ("\n".join([*lines, f"{record_name},,"]) + "\n").encode())
        for new_name, (info, data) in contents.items():
            copy = zipfile.ZipInfo(new_name, date_time=info.date_time)
            copy.external_attr, copy.compress_type, copy.create_system = (info.external_attr, info.compress_type,
                                                                          info.create_system)
            out.writestr(copy, data)
    return out_path
