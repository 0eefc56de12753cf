"""One file, whatever its kind: read, rewritten (or only checked), written back atomically."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from factory.lockfiles import pylock, requirements, uvlock
from factory.lockfiles.ours import LockError, Ours, Pin
from factory.plumbing.files import write_text


@dataclasses.dataclass(frozen=True)
class Rewritten:
    path: Path
    kind: str  # "requirements", "uv.lock" or "pylock.toml"
    pins: tuple[Pin, ...]  # the pins we serve
    changed: bool  # whether the file differs (or, with check, would)


def kind_of(path: Path) -> str:
    if path.name == "uv.lock":
        return "uv.lock"
    if re.fullmatch(r"pylock(\.[^.]+)?\.toml", path.name):
        return "pylock.toml"
    return "requirements"


def hashes(path: Path, ours: Ours, check: bool = False) -> Rewritten:
    """Rewrite ``path`` for factory's index (with ``check``, only say whether it would change)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"{path}: cannot read: {exc}") from None
    kind = kind_of(path)
    rewrite = {"uv.lock": uvlock.rewrite, "pylock.toml": pylock.rewrite}.get(kind, requirements.rewrite)
    try:
        new, pins = rewrite(text, ours)
    except LockError as exc:
        raise LockError(f"{path}: {exc}") from None
    changed = new != text
    if changed and not check:
        mode = path.stat().st_mode & 0o7777
        write_text(path, new)
        path.chmod(mode)  # the user's file keeps its permissions
    return Rewritten(path, kind, tuple(pins), changed)
