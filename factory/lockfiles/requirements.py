"""Requirements files (pip's format, as pip-compile and ``uv pip compile`` write them): every
``NAME==VERSION`` line that carries ``--hash`` options and names a pin factory serves gets our
sha256 beside upstream's. pip accepts a file whose hash is any of those listed, so the file keeps
working against the upstream and works against factory's index. Lines without hashes are left
alone: adding some would turn on hash checking for the whole file."""

from __future__ import annotations

import re
from collections.abc import Iterator

from packaging.requirements import InvalidRequirement, Requirement

from factory.lockfiles.ours import Ours, Pin

_HASH = re.compile(r"--hash[=\s]+sha256:([0-9a-fA-F]{64})")
_OPTION_START = re.compile(r"\s--?[a-z]")


def rewrite(text: str, ours: Ours) -> tuple[str, list[Pin]]:
    """The file with our hashes added; and each pin we serve, with what changed."""
    out: list[str] = []
    pins: list[Pin] = []
    for group in logical_lines(text):
        out += _with_ours(group, ours, pins)
    return "".join(out), pins


def logical_lines(text: str) -> Iterator[list[str]]:
    """The file's logical lines, each as its physical lines (joined by a trailing backslash),
    newlines kept."""
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        group = [lines[i]]
        while group[-1].rstrip("\r\n").endswith("\\") and i + len(group) < len(lines):
            group.append(lines[i + len(group)])
        i += len(group)
        yield group


def joined(group: list[str]) -> str:
    """A logical line as one string."""
    return " ".join(line.rstrip("\r\n").removesuffix("\\") for line in group)


def requirement(logical: str) -> Requirement | None:
    """The requirement a logical line states (its options, such as ``--hash``, left out); None
    for comments, blank lines, option lines and what is no requirement."""
    text = logical.split(" #", 1)[0].strip()
    if not text or text.startswith(("#", "-")):
        return None
    match = _OPTION_START.search(text)
    try:
        return Requirement(text[: match.start()] if match else text)
    except InvalidRequirement:
        return None


def exact_version(found: Requirement) -> str | None:
    """The version a ``NAME==VERSION`` requirement pins, else None (a range, a URL, a wildcard)."""
    specs = list(found.specifier)
    if found.url or len(specs) != 1 or specs[0].operator not in ("==", "===") or specs[0].version.endswith(".*"):
        return None
    return specs[0].version


def _pinned(logical: str) -> tuple[str, str] | None:
    """(name, version) of a ``NAME==VERSION`` requirement line, else None."""
    found = requirement(logical)
    version = exact_version(found) if found is not None else None
    return (found.name, version) if found is not None and version is not None else None


def _with_ours(group: list[str], ours: Ours, pins: list[Pin]) -> list[str]:
    logical = joined(group)
    pinned = _pinned(logical)
    if pinned is None:
        return group
    name, version = pinned
    files = ours.files(name, version)
    if not files:
        return group
    present = {h.lower() for h in _HASH.findall(logical)}
    if not present:
        pins.append(Pin(name, version, ""))  # not hash-pinned: pip takes whatever the index has
        return group
    missing = [f.sha256 for f in files if f.sha256 not in present]
    if not missing:
        pins.append(Pin(name, version, ""))
        return group
    pins.append(Pin(name, version, f"added {len(missing)} sha256 of ours"))
    last = max(n for n, line in enumerate(group) if "--hash" in line)
    newline = "\r\n" if group[last].endswith("\r\n") else "\n"
    body = group[last].rstrip("\r\n")
    if last == 0:  # hashes on the requirement's own line: ours go on it too
        code, hash_sep, comment = body.partition(" #")
        group = list(group)
        group[0] = code.rstrip() + "".join(f" --hash=sha256:{h}" for h in missing) + (
            f" {hash_sep.strip()}{comment}" if hash_sep else "") + newline
        return group
    indent = re.match(r"\s*", body).group(0) or "    "  # type: ignore[union-attr]
    continued = body.endswith("\\")
    added = [f"{indent}--hash=sha256:{h}" for h in missing]
    new_last = [body.rstrip().removesuffix("\\").rstrip() + " \\" + newline]
    new_last += [line + " \\" + newline for line in added[:-1]]
    new_last.append(added[-1] + (" \\" if continued else "") + newline)
    return [*group[:last], *new_last, *group[last + 1:]]
