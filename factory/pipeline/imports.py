"""The import gate: every compiled module a wheel contains is imported in a clean container of
its target (QEMU for aarch64) before anything is published.

A package that falls back to pure Python when its extension fails to load would pass a test
that imports the package only, and a wheel whose ``.so`` cannot load would be signed and
published; so each extension module is imported by its own dotted name. The wheel is installed
alone first, with no network; only if an import then misses a module the wheel does not hold
and the wheel declares runtime dependencies is it tried again with them installed (binaries,
from the upstream, on ``container-network``), so that a missing dependency is not taken for a
broken extension.
"""

from __future__ import annotations

import email.parser
import os
import re
import shlex
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path

from factory.failures import BuildFailure, FailureClass
from factory.pipeline.diagnose import tail
from factory.pipeline.images import BuilderImage
from factory.plumbing import podman
from factory.targets import Target

#: An extension module's file name: the module name, then the ABI tag, if any, and ``.so``.
_EXTENSION = re.compile(r"^(?P<module>[A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z0-9_-]+)?\.so$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MARK = "FACTORY-IMPORT "


def extension_modules(wheel: Path) -> tuple[str, ...]:
    """The dotted names of the compiled modules in ``wheel`` (not the libraries auditwheel
    grafted into ``<name>.libs/``, nor anything under ``.data/``)."""
    found = []
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            parts = name.split("/")
            m = _EXTENSION.match(parts[-1])
            if m is None or any(p.endswith((".libs", ".data", ".dist-info")) for p in parts[:-1]):
                continue
            if all(_IDENTIFIER.match(p) for p in parts[:-1]):
                found.append(".".join([*parts[:-1], m.group("module")]))
    return tuple(sorted(found))


def _has_dependencies(wheel: Path) -> bool:
    with zipfile.ZipFile(wheel) as zf:
        metadata = next(n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        headers = email.parser.BytesHeaderParser().parsebytes(zf.read(metadata))
    return bool(headers.get_all("Requires-Dist"))


def script(wheel_name: str, target: Target, modules: Sequence[str], with_dependencies: bool) -> str:
    """Shell for the container: a fresh venv with the wheel, then each module imported by a
    fresh interpreter, outside any source tree; one ``FACTORY-IMPORT`` line per failure."""
    python = f"/opt/python/{target.cp}-{target.cp}/bin/python"
    deps = "--only-binary=:all:" if with_dependencies else "--no-deps"
    check = ("import importlib, sys, traceback\n"
             "name = sys.argv[1]\n"
             "try:\n"
             "    importlib.import_module(name)\n"
             "except BaseException as exc:\n"
             "    missing = getattr(exc, 'name', None) if isinstance(exc, ModuleNotFoundError) else None\n"
             "    lines = traceback.format_exception(exc)\n"
             f"    print({MARK!r} + name + ' ' + str(missing or ''), flush=True)\n"
             "    print(''.join(lines[-6:]), flush=True)\n"
             "    sys.exit(1)\n")
    steps = [
        'work=$(mktemp -d) && venv="$work/venv"',
        f'{python} -m venv --without-pip "$venv"',
        f'{python} -m pip --python "$venv/bin/python" install --quiet {deps} /wheels/{shlex.quote(wheel_name)} || exit 3',
        'cd "$work"',
        f"cat > check.py <<'EOF'\n{check}EOF",
        "failed=0",
    ]
    steps += [f'"$venv/bin/python" check.py {shlex.quote(m)} || failed=1' for m in modules]
    steps.append('exit "$failed"')
    return "\n".join(steps)


def check(wheel: Path, target: Target, image: BuilderImage, network: str, upstream: str, label: str,
          timeout: float) -> int:
    """Import every extension module of ``wheel`` on ``target``; raise an ``import`` failure
    naming the first that does not import, with its traceback's last lines. Returns how many
    modules were imported (0: a wheel without compiled modules, nothing run)."""
    modules = extension_modules(wheel)
    if not modules:
        return 0
    output, failures = _run(wheel, target, image, modules, False, "none", label, timeout)
    outside = [missing for _, missing in failures if missing and missing.split(".")[0] not in _tops(modules, wheel)]
    if failures and outside and len(outside) == len(failures) and _has_dependencies(wheel):
        # Each failure is a module the wheel does not hold: its runtime dependencies, presumably.
        output, failures = _run(wheel, target, image, modules, True, network, label, timeout, upstream)
    if failures:
        module = failures[0][0]
        last = [line for line in output.splitlines() if line.strip() and not line.startswith(MARK)][-1:] or ["?"]
        raise BuildFailure(FailureClass.IMPORT, f"{module} does not import on {target}: {last[0].strip()}",
                           log_tail=tail(output))
    return len(modules)


def _tops(modules: Sequence[str], wheel: Path) -> set[str]:
    """The top-level names the wheel installs."""
    with zipfile.ZipFile(wheel) as zf:
        return {n.split("/")[0].removesuffix(".py") for n in zf.namelist()} | {m.split(".")[0] for m in modules}


def _run(wheel: Path, target: Target, image: BuilderImage, modules: Sequence[str], with_dependencies: bool,
         network: str, label: str, timeout: float, upstream: str = "") -> tuple[str, list[tuple[str, str]]]:
    cmd = podman.run_args(image.tag, network=network, label=label, volumes=[f"{wheel.parent.resolve()}:/wheels:ro"],
                          pass_env=["PIP_INDEX_URL"] if with_dependencies else [])
    try:
        done = subprocess.run([*cmd, "sh", "-c", script(wheel.name, target, modules, with_dependencies)],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, "PIP_INDEX_URL": upstream})
    except subprocess.TimeoutExpired:
        podman.remove_labelled(label)
        raise BuildFailure(FailureClass.IMPORT, f"importing the modules of {wheel.name} on {target} timed out") from None
    output = done.stdout + done.stderr
    if done.returncode == 3:
        raise BuildFailure(FailureClass.IMPORT, f"{wheel.name} does not install on {target}", log_tail=tail(output))
    failures = []
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            module, _, missing = line[len(MARK):].partition(" ")
            failures.append((module, missing.strip()))
    if done.returncode != 0 and not failures:
        raise BuildFailure(FailureClass.IMPORT, f"importing the modules of {wheel.name} on {target} failed",
                           log_tail=tail(output))
    return output, failures
