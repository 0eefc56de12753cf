"""Repair and check: auditwheel makes each wheel manylinux_2_28 or says why it cannot.

The repair itself runs inside the build container (as cibuildwheel's repair command, the
image's ``factory-repair``), where the libraries to graft are. On failure that script prints
``FACTORY-POLICY {json}`` lines, read back here into a ``policy`` failure naming the symbols and
libraries. Every wheel that leaves the container is then checked again on the host with
``auditwheel show``: no published platform wheel may need more than manylinux_2_28, and every
wheel must be, by its .dist-info and METADATA too, of the release that was asked for.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.utils import parse_wheel_filename
from packaging.version import Version

from factory.failures import BuildFailure, FactoryError, FailureClass
from factory.index.distfile import inspect_wheel
from factory.pipeline.diagnose import tail
from factory.plumbing.files import sha256_file
from factory.targets import MAX_GLIBC, arch_of, glibc_of

#: What cibuildwheel runs in the container to repair a wheel (see containers/bin/factory-repair).
REPAIR_COMMAND = "factory-repair {wheel} {dest_dir}"
MARK = "FACTORY-POLICY "


@dataclasses.dataclass(frozen=True)
class CheckedWheel:
    """A wheel that passed the host's check."""

    path: Path
    sha256: str
    size: int
    policy: str  # auditwheel's overall tag, e.g. manylinux_2_17_x86_64, or "pure"

    @property
    def filename(self) -> str:
        return self.path.name


def policy_failure(log: str) -> BuildFailure | None:
    """The ``policy`` failure reported by factory-repair in a build log, if there is one."""
    findings = []
    for line in log.splitlines():
        if line.startswith(MARK):
            try:
                findings.append(json.loads(line[len(MARK):]))
            except ValueError:
                continue
    if not findings:
        return None
    symbols = [f for f in findings if f.get("kind") == "symbol"]
    missing = [f["library"] for f in findings if f.get("kind") == "missing-library"]
    tags = [f for f in findings if f.get("kind") == "tag"]
    parts = []
    if symbols:
        shown = [f"{s['symbol']}@{s['version']} from {s['library']} (in {s['file']})" for s in symbols[:6]]
        more = f" and {len(symbols) - 6} more" if len(symbols) > 6 else ""
        parts.append("too-recent symbols: " + "; ".join(shown) + more)
    if tags:
        parts.append(f"the wheel needs {tags[0]['tag']}, the policy allows at most manylinux_2_28")
    if missing:
        parts.append("libraries not found to graft: " + ", ".join(missing))
    if any(f.get("kind") == "pure" for f in findings):
        parts.append("the wheel is tagged for a platform but holds no compiled code")
    if not parts:
        parts = [f["message"] for f in findings if f.get("kind") == "auditwheel"][:1]
    return BuildFailure(FailureClass.POLICY, "; ".join(parts), log_tail=tail(log))


def _elf_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return [n for n in zf.namelist() if not n.endswith("/") and zf.open(n).read(4) == b"\x7fELF"]


def check(wheel: Path, project: str, version: Version, arch: str | None = None) -> CheckedWheel:
    """Check one built wheel on the host, trusting nothing the build container said: of the
    release asked for; pure (no compiled code at all) or a platform wheel of ``arch`` that
    auditwheel places at manylinux_2_28 or older and whose tags claim no older glibc than that."""
    name, wheel_version, _, tags = parse_wheel_filename(wheel.name)
    if (name, wheel_version) != (project, version):
        raise BuildFailure(FailureClass.POLICY, f"the build made {wheel.name}, not a wheel of {project} {version}")
    try:
        inspect_wheel(wheel)  # its .dist-info and METADATA say the same as its name
    except FactoryError as exc:
        raise BuildFailure(FailureClass.POLICY, str(exc)) from None
    if all(t.platform == "any" for t in tags):
        if compiled := _elf_files(wheel):
            raise BuildFailure(FailureClass.POLICY, f"{wheel.name} is tagged pure but carries compiled code "
                                                    f"({', '.join(compiled[:3])})")
        return CheckedWheel(wheel, sha256_file(wheel), wheel.stat().st_size, "pure")
    shown = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", "--json", str(wheel)], capture_output=True, text=True, check=False
    )
    try:
        report = json.loads(shown.stdout)
    except ValueError:
        raise BuildFailure(FailureClass.POLICY, f"{wheel.name}: auditwheel show failed: {shown.stderr.strip()[-500:]}") from None
    if "error" in report:
        raise BuildFailure(FailureClass.POLICY, f"{wheel.name}: auditwheel: {report['error']}")
    if report.get("pure"):
        raise BuildFailure(FailureClass.POLICY, f"{wheel.name} is tagged for a platform but holds no compiled code")
    overall = report["overall_tag"]
    glibc = glibc_of(overall)
    if glibc is None or glibc > MAX_GLIBC:
        raise BuildFailure(
            FailureClass.POLICY,
            f"{wheel.name}: auditwheel places it at {overall}, newer than manylinux_2_28 "
            f"(symbol versions: {report.get('versioned_symbols')})",
        )
    platforms = {t.platform for t in tags}
    if not all(p.startswith("manylinux") for p in platforms):
        raise BuildFailure(FailureClass.POLICY, f"{wheel.name} was not repaired: not all its tags are manylinux")
    found_arch = arch_of(overall)
    for platform in sorted(platforms):
        claimed = glibc_of(platform)
        if claimed is None or claimed < glibc or arch_of(platform) != found_arch:
            raise BuildFailure(FailureClass.POLICY, f"{wheel.name} claims {platform}, but auditwheel finds it "
                                                    f"needs {overall}")
    if arch is not None and found_arch != arch:
        raise BuildFailure(FailureClass.POLICY, f"{wheel.name} holds {found_arch} code, built for {arch}")
    return CheckedWheel(wheel, sha256_file(wheel), wheel.stat().st_size, overall)
