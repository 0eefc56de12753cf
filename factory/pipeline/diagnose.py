"""Read a failed build's log and say why it failed, in a class and one line a person can act on."""

from __future__ import annotations

import re

from factory.failures import BuildFailure, FailureClass

#: How much of a build log a record keeps.
TAIL_LINES = 200

_MISSING_HEADER = [
    re.compile(r"fatal error: ([\w./+-]+\.h(?:pp|h)?): No such file or directory"),  # gcc
    re.compile(r"fatal error: '([\w./+-]+\.h(?:pp|h)?)' file not found"),  # clang, zig
]
_MISSING_LIBRARY = [
    re.compile(r"cannot find (-l[\w.+-]+)"),  # GNU ld
    re.compile(r"unable to find (?:dynamic system )?library[: ]+'?(-?l?[\w.+-]+)'?"),  # lld, zig
    re.compile(r"Package '?([\w.+-]+)'?,? .*(?:was )?not found"),  # pkg-config
    re.compile(r"Dependency \"?([\w.+-]+)\"? not found"),  # meson
]
_NETWORK = re.compile(
    r"(Could not fetch URL|Max retries exceeded|Connection (?:refused|reset)|Temporary failure in name resolution"
    r"|Network is unreachable|Read timed out|Name or service not known|No address associated with hostname"
    r"|Could not resolve host|getaddrinfo failed)"
)
_NO_BUILD_DEP = re.compile(r"No matching distribution found for (\S+)")
_ERROR_LINE = re.compile(r"(?:^|\s)(?:error|Error|ERROR)(?:\[E\d+\])?:\s*(.+)")


def tail(log: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(log.splitlines()[-lines:])


def classify(log: str, what: str) -> BuildFailure:
    """A :class:`BuildFailure` for a build step (``what``) that failed with this log."""
    kept = tail(log)
    for what_is_missing, patterns in (("header", _MISSING_HEADER), ("library", _MISSING_LIBRARY)):
        for pattern in patterns:
            if m := pattern.search(log):
                return BuildFailure(
                    FailureClass.MISSING_SYSTEM_LIBRARY,
                    f"{what_is_missing} {m.group(1)} not found: add the Debian package that provides it "
                    f"to the recipe's system-packages",
                    log_tail=kept,
                )
    # Network first: when the index cannot be reached, pip ends with "No matching distribution"
    # too, and that must stay a transient failure, not a permanent not-found.
    if m := _NETWORK.search(log):
        line = next((x.strip() for x in log.splitlines() if m.group(1) in x), m.group(1))
        return BuildFailure(FailureClass.NETWORK, f"{what}: the build tried to reach the network, and builds run "
                                                  f"without one (what they need comes from factory's index): "
                                                  f"{line[:300]}", log_tail=kept)
    if m := _NO_BUILD_DEP.search(log):
        return BuildFailure(
            FailureClass.BUILD_REQUIREMENTS,
            f"{what}: build requirement {m.group(1)} is not in factory's index: the backend asked for it while "
            "building, not when asked for its requirements; add it to the recipe's [build-requires] extra",
            log_tail=kept,
        )
    errors = [m.group(1).strip() for line in log.splitlines() if (m := _ERROR_LINE.search(line))]
    # The first compiler error is usually the cause; the last lines are the tools giving up.
    first = next((e for e in errors if not e.startswith(("Command", "subprocess-exited", "Failed building"))), None)
    reason = f"{what} failed: {first}" if first else f"{what} failed (see the log tail in the record)"
    return BuildFailure(FailureClass.COMPILE, reason[:500], log_tail=kept)
