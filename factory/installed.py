"""What is installed in a site-packages directory, checked against the bytes on disk.

Each distribution's RECORD (read with ``importlib.metadata``) lists its files and their hashes.
A distribution is unchanged when every file its RECORD lists with a hash has those bytes, none
of them is missing, and its directories (its packages and its ``.dist-info``) hold nothing that
no RECORD lists. Compiled files (``__pycache__/*.pyc``) have no hash in a RECORD: each one is
compared with what compiling its source gives, by a Python of the same cache tag (the
environment's own), since Python would run it instead of the source. Files at the top of
site-packages that no RECORD lists (a ``.pth`` file runs code at every start) belong to no
distribution and are reported apart.
"""

from __future__ import annotations

import base64
import dataclasses
import email.message
import hashlib
import importlib.metadata
import json
import os
import posixpath
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

#: What a RECORD may hash with (the wheel spec: sha256 or better).
HASHES = ("sha256", "sha384", "sha512")
#: Files an installer writes into a .dist-info directory beside the wheel's own (PEP 376, 610).
INSTALLER_FILES = ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")
_PYC = re.compile(r"(?P<stem>[^.]+)\.(?P<tag>[^.]+)(?:\.opt-(?P<opt>[12]))?\.pyc")


@dataclasses.dataclass(frozen=True)
class Distribution:
    """One installed distribution, as its .dist-info says."""

    name: str
    version: str
    dist_info: Path
    record: dict[str, str]  # path relative to site-packages -> "sha256=<urlsafe b64>", "" without a hash

    @property
    def directory(self) -> Path:
        return self.dist_info.parent


def record_of(dist: importlib.metadata.Distribution) -> dict[str, str]:
    """A RECORD as path -> ``mode=value`` ("" for an entry without a hash), paths normalized."""
    found = {}
    for path in dist.files or []:
        found[posixpath.normpath(str(path))] = f"{path.hash.mode}={path.hash.value}" if path.hash else ""
    return found


def wheel_record(wheel: Path) -> dict[str, str]:
    """The RECORD of a wheel file (the index's copy)."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/RECORD"))
        # PathDistribution reads through any path-like object, a member of a zip too.
        return record_of(importlib.metadata.PathDistribution(zipfile.Path(zf, name.rsplit("/", 1)[0] + "/")))  # type: ignore[arg-type]


def distributions(directory: Path) -> list[Distribution]:
    """The distributions installed in a site-packages directory (those with a RECORD)."""
    found = []
    for dist_info in sorted(directory.glob("*.dist-info")):
        dist = importlib.metadata.Distribution.at(dist_info)
        try:
            metadata: email.message.Message = dist.metadata  # type: ignore[assignment]
            record = record_of(dist)
        except (OSError, ValueError, UnicodeDecodeError):  # no METADATA or no RECORD: not installed from a wheel
            continue
        if not record:
            continue
        found.append(Distribution(metadata.get("Name") or dist_info.name, metadata.get("Version") or "",
                                  dist_info, record))
    return found


def _hash(path: Path, mode: str) -> str:
    digest = hashlib.new(mode)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


class Compiled:
    """Compares compiled files with their sources, with a Python of the right cache tag: the
    environment's own (``env/bin/python*``) or the one running factory."""

    SCRIPT = ("import json, marshal, sys\n"
              "from importlib.util import MAGIC_NUMBER\n"
              "bad = []\n"
              "for pyc, source, optimize in json.load(sys.stdin):\n"
              "    try:\n"
              "        data = open(pyc, 'rb').read()\n"
              "        if data[:4] != MAGIC_NUMBER:\n"
              "            continue  # not for this Python: it would never load it\n"
              "        code = compile(open(source, 'rb').read(), source, 'exec', dont_inherit=True, optimize=optimize)\n"
              "        if marshal.loads(data[16:]) != code:\n"
              "            bad.append(pyc)\n"
              "    except Exception:\n"
              "        bad.append(pyc)\n"
              "print(json.dumps(bad))\n")

    def __init__(self, env: Path) -> None:
        self.candidates = sorted(p for p in env.glob("bin/python*") if p.is_file()) + [Path(sys.executable)]
        self._by_tag: dict[str, Path | None] = {}

    def _python(self, tag: str) -> Path | None:
        if tag not in self._by_tag:
            self._by_tag[tag] = None
            for python in self.candidates:
                asked = subprocess.run([str(python), "-I", "-S", "-c", "import sys; print(sys.implementation.cache_tag)"],
                                       capture_output=True, text=True, check=False)
                if asked.returncode == 0 and asked.stdout.strip() == tag:
                    self._by_tag[tag] = python
                    break
        return self._by_tag[tag]

    def differing(self, pairs: Sequence[tuple[Path, Path]]) -> list[str]:
        """Problems with (compiled file, its source) pairs: each one that is not its source compiled."""
        problems = []
        by_tag: dict[str, list[tuple[str, str, int]]] = {}
        for pyc, source in pairs:
            m = _PYC.fullmatch(pyc.name)
            assert m is not None
            by_tag.setdefault(m["tag"], []).append((str(pyc), str(source), int(m["opt"] or 0)))
        for tag, jobs in sorted(by_tag.items()):
            python = self._python(tag)
            if python is None:
                problems += [f"cannot check {p} (compiled for {tag}): no such Python here; give --env the virtualenv"
                             for p, _, _ in jobs]
                continue
            done = subprocess.run([str(python), "-I", "-S", "-c", self.SCRIPT], input=json.dumps(jobs),
                                  capture_output=True, text=True, check=False)
            try:
                bad = json.loads(done.stdout)
            except ValueError:
                bad = [p for p, _, _ in jobs]
            problems += [f"compiled file is not its source compiled: {p}" for p in bad]
        return problems


def owned(dists: Iterable[Distribution]) -> set[str]:
    """Every path some RECORD lists."""
    return {path for dist in dists for path in dist.record}


def changes(dist: Distribution, everyone: set[str], compiled: Compiled) -> list[str]:
    """How ``dist`` differs on disk from its RECORD: modified, missing and unlisted files, and
    compiled files that are not their source compiled. Empty when it is as installed."""
    directory = dist.directory
    found: list[str] = []
    to_compile: list[tuple[Path, Path]] = []
    for path, recorded in sorted(dist.record.items()):
        local = Path(os.path.normpath(directory / path))
        if recorded:
            mode, _, value = recorded.partition("=")
            if mode not in HASHES:
                found.append(f"hashed with {mode}, not sha256 or better: {path}")
            elif not local.is_file():
                found.append(f"missing: {path}")
            elif _hash(local, mode) != value:
                found.append(f"modified: {path}")
        elif path.endswith(".pyc"):
            if local.is_file():
                to_compile.append((local, _source(local)))
        elif path != posixpath.join(dist.dist_info.name, "RECORD"):
            found.append(f"listed without a hash: {path}")
    for local in _files_under(directory, _directories(dist)):
        path = local.relative_to(directory).as_posix()
        if path in everyone:
            continue
        if local.name.endswith(".pyc") and local.parent.name == "__pycache__" and _PYC.fullmatch(local.name):
            source = _source(local)
            if source.relative_to(directory).as_posix() in dist.record:
                to_compile.append((local, source))
                continue
        found.append(f"unlisted: {path}")
    to_compile += _top_level_compiled(dist, everyone)
    for pyc, source in to_compile:
        if not source.is_file():
            found.append(f"compiled file without its source: {pyc.relative_to(directory).as_posix()}")
    found += compiled.differing([(p, s) for p, s in to_compile if s.is_file()])
    return found


def _source(pyc: Path) -> Path:
    """The source a compiled file in ``__pycache__`` is of."""
    m = _PYC.fullmatch(pyc.name)
    return pyc.parent.parent / f"{m['stem'] if m else pyc.stem}.py"


def _directories(dist: Distribution) -> set[str]:
    """The top-level directories a distribution's files live in, its .dist-info among them."""
    tops = {path.split("/", 1)[0] for path in dist.record if "/" in path and not path.startswith("../")}
    # A top-level module's compiled files live in the shared __pycache__: checked one by one.
    tops.discard("__pycache__")
    return tops | {dist.dist_info.name}


def _files_under(directory: Path, tops: Iterable[str]) -> list[Path]:
    found = []
    for top in sorted(tops):
        root = directory / top
        if root.is_symlink() or not root.is_dir():
            continue
        for parent, dirs, files in os.walk(root):
            for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(parent, d))]:
                found.append(Path(parent, name))
    return found


def _top_level_compiled(dist: Distribution, everyone: set[str]) -> list[tuple[Path, Path]]:
    """Unlisted compiled files of a distribution's top-level modules (``__pycache__/six.*.pyc``)."""
    directory = dist.directory
    pairs = []
    for path in dist.record:
        if "/" not in path and path.endswith(".py"):
            for pyc in sorted((directory / "__pycache__").glob(f"{path[:-3]}.*.pyc")):
                if f"__pycache__/{pyc.name}" not in everyone and _PYC.fullmatch(pyc.name):
                    pairs.append((pyc, directory / path))
    return pairs


def unowned(directory: Path, everyone: set[str], dists: Iterable[Distribution]) -> list[Path]:
    """Entries at the top of site-packages that no RECORD lists (nor is a .dist-info)."""
    tops = {path.split("/", 1)[0] for path in everyone if not path.startswith("../")}
    tops |= {dist.dist_info.name for dist in dists}
    found = []
    for entry in sorted(directory.iterdir()):
        if entry.name in tops:
            continue
        if entry.name == "__pycache__" and entry.is_dir() and not entry.is_symlink():
            # Compiled top-level modules: each must be of a listed source (checked with its distribution).
            sources = {f"{m['stem']}.py" for pyc in entry.iterdir() if (m := _PYC.fullmatch(pyc.name))}
            if sources <= everyone:
                continue
        found.append(entry)
    return found
