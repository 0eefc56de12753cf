"""Make sdists for the tests: real ones from tests/projects, and malicious ones by hand."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

PROJECTS = Path(__file__).resolve().parent.parent / "projects"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def make_sdist(project: str, version: str, dest: Path, *, name: str | None = None,
               metadata_version: str = "2.1") -> Path:
    """A PEP 625 sdist of ``tests/projects/<project>``: ``<name>-<version>/`` with a PKG-INFO.
    ``name`` publishes the same sources under another project name; from ``metadata_version``
    2.2 on, the PKG-INFO's fields hold (PEP 643) and it says the project's Requires-Python."""
    name = name or project
    source = PROJECTS / project
    stem = f"{name.replace('-', '_')}-{version}"
    path = dest / f"{stem}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        pkg_info = f"Metadata-Version: {metadata_version}\nName: {name}\nVersion: {version}\n"
        if metadata_version >= "2.2":
            pkg_info += "Requires-Python: >=3.8\n"
        _add_bytes(tar, f"{stem}/PKG-INFO", pkg_info.encode())
        for file in sorted(source.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                data = file.read_bytes()
                if file.name == "pyproject.toml":
                    data = data.replace(f'name = "{project}"'.encode(), f'name = "{name}"'.encode())
                _add_bytes(tar, f"{stem}/{file.relative_to(source)}", data, file.stat().st_mode & 0o777)
    return path


def _member(kind: str, name: str, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = int(time.time())
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, target
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, target
    elif kind == "chr":
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    elif kind == "fifo":
        info.type = tarfile.FIFOTYPE
    elif kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info


def malicious_sdist(case: str, dest: Path) -> tuple[Path, str]:
    """Write the sdist of project ``evil-<case>`` and return it with the member it must be refused for."""
    stem = f"evil_{case.replace('-', '_')}-1.0"
    add, member = MALICIOUS[case]
    path = dest / f"{stem}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        _add_bytes(tar, f"{stem}/PKG-INFO", f"Metadata-Version: 2.1\nName: evil-{case}\nVersion: 1.0\n".encode())
        _add_bytes(tar, f"{stem}/setup.py", b"from setuptools import setup\nsetup()\n")
        add(tar, stem)
    return path, member.format(stem=stem)


Adder = Callable[[tarfile.TarFile, str], None]
#: One malicious sdist per unsafe-archive case: what to add, and the member the refusal must name.
MALICIOUS: dict[str, tuple[Adder, str]] = {
    "absolute-path": (lambda t, s: _add_bytes(t, "/tmp/factory-evil-abs", b"x"), "/tmp/factory-evil-abs"),
    "dot-dot": (lambda t, s: _add_bytes(t, f"{s}/../../factory-evil", b"x"), "{stem}/../../factory-evil"),
    "symlink-escape": (lambda t, s: t.addfile(_member("symlink", f"{s}/escape", "../../../etc")), "{stem}/escape"),
    "symlink-absolute": (lambda t, s: t.addfile(_member("symlink", f"{s}/passwd", "/etc/passwd")), "{stem}/passwd"),
    "hardlink-escape": (lambda t, s: t.addfile(_member("hardlink", f"{s}/shadow", "etc/shadow")), "{stem}/shadow"),
    "device-file": (lambda t, s: t.addfile(_member("chr", f"{s}/null")), "{stem}/null"),
    "fifo": (lambda t, s: t.addfile(_member("fifo", f"{s}/pipe")), "{stem}/pipe"),
    "two-top-level": (lambda t, s: _add_bytes(t, "other-1.0/setup.py", b"x"), "other-1.0/setup.py"),
    "file-at-top": (lambda t, s: _add_bytes(t, "README", b"x"), "README"),
    "too-big": (lambda t, s: _add_bytes(t, f"{s}/big.bin", b"\0" * 4 * 1024 * 1024), "{stem}/big.bin"),
}


#: A member for `add_tree`: (kind, name, target). Kind is "file" (target: its text), "dir", "symlink"
#: (target relative to the link's directory) or "hardlink" (target relative to the archive root).
#: "{stem}" in a name or target is the sdist's top directory.
TreeMember = tuple[str, str, str]


def add_tree(tar: tarfile.TarFile, stem: str, members: list[TreeMember]) -> None:
    """Add ``members`` to ``tar`` in their order, "{stem}" replaced by ``stem``."""
    for kind, name, target in members:
        name, target = name.format(stem=stem), target.format(stem=stem)
        if kind == "file":
            _add_bytes(tar, name, target.encode())
        else:
            tar.addfile(_member(kind, name, target))


def tree_sdist(dest: Path, stem: str, members: list[TreeMember]) -> Path:
    """An sdist ``<stem>.tar.gz`` with a PKG-INFO and ``members`` (see `add_tree`), in that order."""
    path = dest / f"{stem}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        _add_bytes(tar, f"{stem}/PKG-INFO", b"Metadata-Version: 2.1\nName: tree\nVersion: 1.0\n")
        add_tree(tar, stem, members)
    return path


#: Links whose target text looks harmless, or differs from where they lead once earlier links are
#: followed: each must be refused, naming the member.
MALICIOUS.update({
    # One `..` too many: inside the destination but outside the sdist's directory.
    "symlink-parent-escape": (lambda t, s: add_tree(t, s, [("symlink", "{stem}/docs/up", "../../outside")]),
                              "{stem}/docs/up"),
    # Lexically `{stem}`, really its parent: `sub` is the top directory itself.
    "symlink-chain-escape": (lambda t, s: add_tree(t, s, [("symlink", "{stem}/sub", "."),
                                                          ("symlink", "{stem}/esc", "sub/sub/../..")]),
                             "{stem}/esc"),
    "symlink-dir-write": (lambda t, s: add_tree(t, s, [("symlink", "{stem}/d", ".."),
                                                       ("file", "{stem}/d/evil.pth", "import os")]),
                          "{stem}/d"),
    # `a` leads inside when made; `m`, made after it, turns its `..` into the top's parent.
    "symlink-repointed-write": (lambda t, s: add_tree(t, s, [("symlink", "{stem}/a", "m/.."),
                                                             ("symlink", "{stem}/m", "."),
                                                             ("file", "{stem}/a/evil.pth", "import os")]),
                                "{stem}/a/evil.pth"),
    "symlink-loop": (lambda t, s: add_tree(t, s, [("symlink", "{stem}/a", "b"), ("symlink", "{stem}/b", "a")]),
                     "{stem}/b"),
    # The last of two members with one name wins: the second must be checked too.
    "symlink-duplicate": (lambda t, s: add_tree(t, s, [("symlink", "{stem}/l", "setup.py"),
                                                       ("symlink", "{stem}/l", "../../etc/passwd")]),
                          "{stem}/l"),
    "hardlink-through-symlink": (lambda t, s: add_tree(t, s, [("symlink", "{stem}/up", "."),
                                                              ("hardlink", "{stem}/h", "{stem}/up/../../etc/passwd")]),
                                 "{stem}/h"),
})
