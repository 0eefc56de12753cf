"""Read a failed build's log and say why it failed, in a class and one line a person can act on;
and what it was missing (a header, a pkg-config module, a library, a program), with the line
that said so, read from the whole log."""

from __future__ import annotations

import dataclasses
import re

from factory.failures import BuildFailure, FailureClass

#: How much of a build log a record keeps.
TAIL_LINES = 200

_NETWORK = re.compile(
    r"(Could not fetch URL|Max retries exceeded|Connection (?:refused|reset)|Temporary failure in name resolution"
    r"|Network is unreachable|Read timed out|Name or service not known|No address associated with hostname"
    r"|Could not resolve host|getaddrinfo failed)"
)
#: pip's own words when it cannot install something, most telling first.
_PIP_CONFLICT = re.compile(r"Cannot install (.+?) because these package versions have conflicting dependencies")
_PIP_NO_VERSION = re.compile(r"Could not find a version that satisfies the requirement (\S+(?: ; [^(]+)?)"
                             r"(?: \(from versions: ([^)]*)\))?")
_PIP_NO_DISTRIBUTION = re.compile(r"No matching distribution found for (\S+)")
_PIP_CAUSE = re.compile(r"^\s*The user requested (?:\(constraint\) )?\S.*$|^\s*\S+ depends on \S.*$")
_ERROR_LINE = re.compile(r"(?:^|\s)(?:error|Error|ERROR)(?:\[E\d+\])?:\s*(.+)")


@dataclasses.dataclass(frozen=True)
class Miss:
    """Something a build looked for and did not find."""

    kind: str  # header, pkg-config, library, program, or name (from prose: any of them)
    name: str  # yaml.h, libxml-2.0, yaml (for -lyaml), curl-config, zlib
    line: str  # the log line that said so

    def __str__(self) -> str:
        return {"header": "header", "pkg-config": "pkg-config module", "library": "library -l",
                "program": "program", "name": "dependency"}[self.kind] + ("" if self.kind == "library" else " ") + \
            self.name


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("header", re.compile(r"fatal error: ([\w./+-]+\.h(?:pp|h)?): No such file or directory")),  # gcc
    ("header", re.compile(r"fatal error: '([\w./+-]+\.h(?:pp|h)?)' file not found")),  # clang, zig
    ("pkg-config", re.compile(r"Package '?([\w.+-]+?)'?,? (?:required by '[^']*', )?(?:was )?not found")),
    ("pkg-config", re.compile(r"No package '([\w.+-]+)' found")),
    ("pkg-config", re.compile(r"(?:Run-time |Build-time )?[Dd]ependency \"?([\w.+-]+)\"? (?:found: NO|not found)")),
    ("library", re.compile(r"cannot find -l([\w.+-]+)")),  # GNU ld
    ("library", re.compile(r"unable to find (?:[Dd]ynamic )?(?:system )?library[: ]+'?-?l?([\w.+-]+?)'?(?:\s|$)")),
    ("program", re.compile(r"([\w.+-]+-config|pg_config)(?::)? (?:command )?not found")),
    ("program", re.compile(r"([\w.+-]+-config|pg_config) executable not found")),
    ("program", re.compile(r"No such file or directory: '([\w.+-]+-config|pg_config)'")),
    ("program", re.compile(r"[Cc]ould not run ([\w.+-]+-config|pg_config)")),
    ("name", re.compile(r"The headers or library files could not be found for ([\w.+-]+)")),
    ("name", re.compile(r"Could NOT find ([\w.+-]+)")),  # CMake
]
_PROSE_PACKAGES = re.compile(r"[Pp]lease make sure the ([\w.+ ,-]+?) development packages? (?:is|are) installed")


def misses(log: str) -> list[Miss]:
    """Every distinct miss in a build log, in the order the log shows them."""
    found: dict[tuple[str, str], Miss] = {}
    for line in log.splitlines():
        for kind, pattern in _PATTERNS:
            for m in pattern.finditer(line):
                name = m.group(1)
                if kind == "pkg-config" and name.lower() in ("python", "python3", "python-3", "pkg-config"):
                    continue
                found.setdefault((kind, name), Miss(kind, name, line))
        if m := _PROSE_PACKAGES.search(line):
            for name in re.split(r",\s*|\s+and\s+", m.group(1)):
                if name.strip():
                    found.setdefault(("name", name.strip()), Miss("name", name.strip(), line))
    return list(found.values())


@dataclasses.dataclass(frozen=True)
class PipSaid:
    """Why pip could not install a build requirement, in its own words."""

    requirement: str  # what it was asked to install, as it printed it
    words: str  # its decisive line (and, for a conflict, the requirements that conflict)
    pinned: bool  # a constraint (the build's pins) took part: the environment lacks a pinned wheel

    @property
    def advice(self) -> str:
        if self.pinned:
            return ("the build's environment does not offer the wheel its pin names (each pinned version must be "
                    "in factory's index and offered to the build)")
        return ("it is not among the build's pins (a build is offered those and nothing else): the backend asked "
                "for it while building, not when asked for its requirements; add it to the recipe's "
                "[build-requires] extra")


def pip_said(log: str) -> PipSaid | None:
    """pip's own account of an install that failed in ``log``, if pip failed there."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if m := _PIP_CONFLICT.search(line):
            # pip prints the causes before its ERROR line; the nearest block of them is this one.
            causes = [c.strip() for c in lines[max(0, i - 30):i] if _PIP_CAUSE.match(c)]
            words = f"cannot install {m.group(1)}" + (f" ({'; '.join(dict.fromkeys(causes))})" if causes else "")
            return PipSaid(m.group(1), words, any("(constraint)" in c for c in causes))
    for line in lines:
        if m := _PIP_NO_VERSION.search(line):
            offered = m.group(2)
            words = f"no version satisfies {m.group(1)} (offered: {offered.strip() if offered else 'none'})"
            return PipSaid(m.group(1), words, False)
    for line in lines:
        if m := _PIP_NO_DISTRIBUTION.search(line):
            return PipSaid(m.group(1), f"no matching distribution found for {m.group(1)}", False)
    return None


def tail(log: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(log.splitlines()[-lines:])


def classify(log: str, what: str) -> BuildFailure:
    """A :class:`BuildFailure` for a build step (``what``) that failed with this log."""
    kept = tail(log)
    if found := misses(log):  # read from the whole log: the cause is often far from its end
        first = found[0]
        return BuildFailure(
            FailureClass.MISSING_SYSTEM_LIBRARY,
            f"{first} not found (\"{first.line.strip()[:200]}\"): factory installs what Debian's index says ships "
            "it; where that is not enough, name the package in the recipe's system-packages",
            log_tail=kept,
        )
    # Network first: when the index cannot be reached, pip ends with "No matching distribution"
    # too, and that must stay a transient failure, not a permanent not-found.
    if m := _NETWORK.search(log):
        line = next((x.strip() for x in log.splitlines() if m.group(1) in x), m.group(1))
        return BuildFailure(FailureClass.NETWORK, f"{what}: the build tried to reach the network, and builds run "
                                                  f"without one (what they need comes from factory's index): "
                                                  f"{line[:300]}", log_tail=kept)
    if said := pip_said(log):
        return BuildFailure(FailureClass.BUILD_REQUIREMENTS, f"{what}: pip: {said.words}: {said.advice}",
                            log_tail=kept)
    errors = [m.group(1).strip() for line in log.splitlines() if (m := _ERROR_LINE.search(line))]
    # The first compiler error is usually the cause; the last lines are the tools giving up.
    first = next((e for e in errors if not e.startswith(("Command", "subprocess-exited", "Failed building"))), None)
    reason = f"{what} failed: {first}" if first else f"{what} failed (see the log tail in the record)"
    return BuildFailure(FailureClass.COMPILE, reason[:500], log_tail=kept)
