"""Published names a build does not choose itself: a remediated build's local version label
(``1.2.3+factory.1``), so that users and ``factory verify`` can tell it from the plain rebuild
while ``==1.2.3`` still selects it; and the wheel build tag of ``wheel-build-tag``
(``markupsafe-3.0.2-1-cp311-...whl``), which pip and uv rank above no build tag when a merged
index offers our wheel and upstream's with equally good platform tags.

The project's own build knows nothing of either, so the wheel is rewritten after it is built and
repaired: its file name, its ``.dist-info`` directory, the ``Version`` in its METADATA, the
``Build`` of its WHEEL file and its RECORD. The members keep their order and their zip metadata,
so a rewritten rebuild is as reproducible as the build.
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


#: A wheel build tag: a digit first (the spec sorts it as (number, rest)), no dash.
BUILD_TAG = re.compile(r"[0-9][A-Za-z0-9_]*")


def relabel(wheel: Path, version: Version, dest: Path, build_tag: str | None = None) -> Path:
    """A copy of ``wheel`` in ``dest`` whose version is ``version`` (the wheel's own, maybe plus
    a local label) and, when ``build_tag`` is given, with that build tag (in place of any it
    had); the original is left as it was."""
    _, old, _, _ = parse_wheel_filename(wheel.name)
    if old != Version(version.public):
        raise BuildFailure(FailureClass.POLICY, f"{wheel.name} is version {old}, not {version.public}")
    if build_tag is not None and not BUILD_TAG.fullmatch(build_tag):
        raise BuildFailure(FailureClass.POLICY, f"{build_tag!r} is not a wheel build tag (a digit, then letters, "
                                                "digits or _)")
    parts = wheel.name.removesuffix(".whl").split("-")
    distribution, tags = parts[0], parts[-3:]
    build = [build_tag] if build_tag is not None else parts[2:-3]
    filename = "-".join([distribution, str(version).replace("-", "_"), *build, *tags]) + ".whl"
    relabelled = str(version).replace("-", "_") != parts[1]  # else only the build tag changes
    old_info = f"{distribution}-{parts[1]}.dist-info/"
    new_info = f"{distribution}-{version}.dist-info/" if relabelled else old_info
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
            if new_name == new_info + "METADATA" and relabelled:
                data = re.sub(rb"^Version: .*$", f"Version: {version}".encode(), data, count=1, flags=re.M)
            if new_name == new_info + "WHEEL" and build_tag is not None:
                data = _with_build(data, build_tag)
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


def _with_build(wheel_file: bytes, build_tag: str) -> bytes:
    """A WHEEL file saying ``Build: <build_tag>`` (in place of the one it had, or at its end)."""
    line = f"Build: {build_tag}".encode()
    if re.search(rb"^Build: .*$", wheel_file, flags=re.M):
        return re.sub(rb"^Build: .*$", line, wheel_file, count=1, flags=re.M)
    newline = b"\r\n" if b"\r\n" in wheel_file else b"\n"
    return wheel_file.rstrip(b"\r\n") + newline + line + newline
