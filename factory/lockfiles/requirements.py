"""Requirements files (pip's format, as pip-compile and ``uv pip compile`` write them): every
``NAME==VERSION`` line that carries ``--hash`` options and names a pin factory serves gets our
sha256 beside upstream's. pip accepts a file whose hash is any of those listed, so the file keeps
working against the upstream and works against factory's index. Lines without hashes are left
alone: adding some would turn on hash checking for the whole file."""

from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement, Requirement

from factory.lockfiles.ours import Ours, Pin

_HASH = re.compile(r"--hash[=\s]+sha256:([0-9a-fA-F]{64})")
_OPTION_START = re.compile(r"\s--?[a-z]")


def rewrite(text: str, ours: Ours) -> tuple[str, list[Pin]]:
    """The file with our hashes added; and each pin we serve, with what changed."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    pins: list[Pin] = []
    i = 0
    while i < len(lines):
        group = [lines[i]]  # one logical line: physical lines joined by a trailing backslash
        while group[-1].rstrip("\r\n").endswith("\\") and i + len(group) < len(lines):
            group.append(lines[i + len(group)])
        i += len(group)
        out += _with_ours(group, ours, pins)
    return "".join(out), pins


def _pinned(logical: str) -> tuple[str, str] | None:
    """(name, version) of a ``NAME==VERSION`` requirement line, else None."""
    text = logical.split(" #", 1)[0].strip()
    if not text or text.startswith(("#", "-")):
        return None
    match = _OPTION_START.search(text)
    try:
        requirement = Requirement(text[: match.start()] if match else text)
    except InvalidRequirement:
        return None
    specs = list(requirement.specifier)
    if requirement.url or len(specs) != 1 or specs[0].operator not in ("==", "==="):
        return None
    return requirement.name, specs[0].version


def _with_ours(group: list[str], ours: Ours, pins: list[Pin]) -> list[str]:
    logical = " ".join(line.rstrip("\r\n").removesuffix("\\") for line in group)
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
