"""The import gate: every compiled module a wheel contains is loaded and imported in a clean
container of its target (QEMU for aarch64) before anything is published.

A package that falls back to pure Python when its extension fails to load would pass a test
that imports the package only, and a wheel whose ``.so`` cannot load would be signed and
published; so each extension module is checked by its own dotted name, twice:

- **loaded**: its shared object is opened with every symbol resolved (``RTLD_NOW``, as CPython
  opens extensions) and its ``PyInit_`` function exists. A broken binary always fails here.
- **imported**: with the wheel's runtime dependencies installed (offered read-only by
  :mod:`factory.pipeline.rundeps`; the container has no network). An import that fails only
  because a module is missing that is neither in the wheel nor installed by any of its
  requirements (an optional part of the standard library that Debian packages apart, a test-only
  dependency) is a check skipped, naming the module, not a failure: the binary loaded.

Which failures are which is decided by :func:`judge`, a pure function.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path

from factory.failures import BuildFailure, FailureClass
from factory.pipeline.diagnose import pip_said, tail
from factory.pipeline.images import BuilderImage
from factory.pipeline.rundeps import RuntimeDependencies
from factory.plumbing import podman
from factory.targets import Target

#: An extension module's file name: the module name, then the ABI tag, if any, and ``.so``.
_EXTENSION = re.compile(r"^(?P<module>[A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z0-9_-]+)?\.so$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MARK = "FACTORY-IMPORT "
#: The exit status of the container script when the wheel (or what it needs) does not install.
NOT_INSTALLED = 3

#: Run by a fresh interpreter per module: load the shared object, then import the module; one
#: ``FACTORY-IMPORT {json}`` line says what happened.
CHECK = """\
import ctypes, importlib, importlib.metadata, json, os, sys, sysconfig, traceback
name, member = sys.argv[1], sys.argv[2]
result = {"module": name}
def say(**fields):
    result.update(fields)
    print(%(mark)r + json.dumps(result), flush=True)
    sys.exit(0)
paths = sysconfig.get_paths()
path = next((p for p in (os.path.join(paths[k], member) for k in ("platlib", "purelib")) if os.path.exists(p)), None)
if path is None:
    say(outcome="load", error="not installed at " + member)
try:
    library = ctypes.CDLL(path, mode=os.RTLD_NOW)
except OSError as exc:
    say(outcome="load", error=str(exc))
if not hasattr(library, "PyInit_" + name.rsplit(".", 1)[-1]):
    say(outcome="load", error="no PyInit_" + name.rsplit(".", 1)[-1] + " in " + member)
try:
    importlib.import_module(name)
except BaseException as exc:
    missing, cause = None, exc
    while cause is not None:  # a package often re-raises a missing dependency as its own ImportError
        if isinstance(cause, ModuleNotFoundError) and cause.name:
            missing = cause.name
            break
        cause = cause.__cause__ or cause.__context__
    top = (missing or "").split(".")[0]
    provided = bool(top) and top in importlib.metadata.packages_distributions()
    print("".join(traceback.format_exception(exc)[-6:]), flush=True)
    say(outcome="import", error=f"{type(exc).__name__}: {exc}", missing=missing, provided=provided)
say(outcome="ok")
""" % {"mark": MARK}


def extension_modules(wheel: Path) -> tuple[str, ...]:
    """The dotted names of the compiled modules in ``wheel`` (not the libraries auditwheel
    grafted into ``<name>.libs/``, nor anything under ``.data/``)."""
    return tuple(sorted(_extensions(wheel)))


def _extensions(wheel: Path) -> dict[str, str]:
    """Dotted name -> member path, for each compiled module of ``wheel``."""
    found = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            parts = name.split("/")
            m = _EXTENSION.match(parts[-1])
            if m is None or any(p.endswith((".libs", ".data", ".dist-info")) for p in parts[:-1]):
                continue
            if all(_IDENTIFIER.match(p) for p in parts[:-1]):
                found[".".join([*parts[:-1], m.group("module")])] = name
    return found


def _tops(wheel: Path) -> frozenset[str]:
    """The top-level names the wheel installs."""
    with zipfile.ZipFile(wheel) as zf:
        names = {n.split("/")[0] for n in zf.namelist()}
    return frozenset(re.sub(r"(\.[A-Za-z0-9_-]+)?\.(py|so)$", "", n) for n in names
                     if not n.endswith((".dist-info", ".data", ".libs")))


@dataclasses.dataclass(frozen=True)
class Result:
    """What happened to one module in the container."""

    module: str
    outcome: str  # ok, load (the shared object did not open, or has no init), import
    error: str = ""
    missing: str | None = None  # the module an import could not find
    provided: bool = False  # whether an installed distribution provides that module's package


@dataclasses.dataclass(frozen=True)
class Skipped:
    """An import not checked: the module needs one the wheel and its requirements lack."""

    module: str
    missing: str
    why: str

    def __str__(self) -> str:
        return f"import of {self.module} not checked: it needs {self.missing}, {self.why}"


@dataclasses.dataclass(frozen=True)
class ImportCheck:
    """The gate's verdict on one wheel on one target, when it passed."""

    loaded: tuple[str, ...]  # every extension module: opened with all symbols, init present
    imported: tuple[str, ...]
    skipped: tuple[Skipped, ...] = ()


def judge(results: Sequence[Result], tops: frozenset[str], deps: RuntimeDependencies,
          target: Target) -> ImportCheck:
    """The gate's verdict from each module's result: an :class:`ImportCheck`, or a
    :class:`BuildFailure` raised naming the first module that failed and why."""
    skipped = []
    for result in results:
        if result.outcome == "ok":
            continue
        if result.outcome == "load":
            raise BuildFailure(FailureClass.IMPORT, f"{result.module} does not load on {target}: {result.error}")
        top = (result.missing or "").split(".")[0]
        if not top or top in tops or result.provided:
            raise BuildFailure(FailureClass.IMPORT, f"{result.module} does not import on {target}: {result.error}")
        if deps.unavailable:
            why = f"and its requirements could not be offered to the test ({deps.unavailable})"
        else:
            why = "which is neither in the wheel nor installed by its requirements (an optional module, or one " \
                  "only its tests need)"
        skipped.append(Skipped(result.module, result.missing or top, why))
    loaded = tuple(r.module for r in results)
    imported = tuple(r.module for r in results if r.outcome == "ok")
    return ImportCheck(loaded, imported, tuple(skipped))


def script(wheel_name: str, target: Target, modules: dict[str, str], with_dependencies: bool) -> str:
    """Shell for the container: a fresh venv with the wheel (and what it needs, from the offered
    wheels only), then each module checked by a fresh interpreter, outside any source tree."""
    python = f"/opt/python/{target.cp}-{target.cp}/bin/python"
    deps = "" if with_dependencies else "--no-deps "
    steps = [
        'work=$(mktemp -d) && venv="$work/venv"',
        f'{python} -m venv --without-pip "$venv"',
        f'{python} -m pip --python "$venv/bin/python" install {deps}/wheels/{shlex.quote(wheel_name)} '
        f'|| exit {NOT_INSTALLED}',
        'cd "$work"',
        f"cat > check.py <<'EOF'\n{CHECK}EOF",
    ]
    steps += [f'"$venv/bin/python" check.py {shlex.quote(m)} {shlex.quote(member)}' for m, member in modules.items()]
    return "\n".join(steps)


def check(wheel: Path, target: Target, image: BuilderImage, deps: RuntimeDependencies, label: str,
          timeout: float) -> ImportCheck:
    """Load and import every extension module of ``wheel`` on ``target``, with its runtime
    dependencies ``deps`` installed; raise an ``import`` failure naming the first that fails.
    A wheel without compiled modules passes with nothing run."""
    modules = _extensions(wheel)
    if not modules:
        return ImportCheck((), ())
    offered = deps.env if deps.env is not None and not deps.unavailable else None
    volumes = [f"{wheel.parent.resolve()}:/wheels:ro", *(offered.volumes if offered else [])]
    variables = offered.variables if offered else {}
    cmd = podman.run_args(image.tag, network="none", label=label, volumes=volumes, pass_env=list(variables))
    try:
        done = subprocess.run([*cmd, "sh", "-c", script(wheel.name, target, dict(sorted(modules.items())),
                                                         offered is not None)],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, **variables})
    except subprocess.TimeoutExpired:
        podman.remove_labelled(label)
        raise BuildFailure(FailureClass.IMPORT, f"importing the modules of {wheel.name} on {target} timed out") from None
    output = done.stdout + done.stderr
    if done.returncode == NOT_INSTALLED:
        said = pip_said(output)
        raise BuildFailure(FailureClass.IMPORT, f"{wheel.name} does not install on {target}"
                           + (f": pip: {said.words}" if said else ""), log_tail=tail(output))
    results = [Result(**json.loads(line[len(MARK):])) for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or len(results) != len(modules):
        raise BuildFailure(FailureClass.IMPORT, f"checking the modules of {wheel.name} on {target} failed",
                           log_tail=tail(output))
    try:
        return judge(results, _tops(wheel), deps, target)
    except BuildFailure as failure:
        raise BuildFailure(failure.failure_class, failure.reason, log_tail=tail(output)) from None
