"""Build:  turn an unpacked sdist into wheels inside factory's builder images.

Projects with compiled sources go through cibuildwheel, once per architecture with every
Python of that architecture in one container (abi3 wheels are then built once). factory writes
the whole cibuildwheel configuration and always passes ``--config-file``, so a project's own
``[tool.cibuildwheel]`` (and its shell hooks) is never obeyed; ``CIBW_*`` variables from the
caller's environment are dropped too. Containers run with ``--runtime runc``, no host mount and
no network: they see exactly the build's pinned wheels, taken from factory's own index, which
pip has as its only index, pinned by a constraints file too (see buildenv.py). Debian packages a
recipe names are in the image already (images.with_packages), so nothing is fetched during a build.

When that one run fails, each Python is built on its own, so that one failing target does not
lose the others. When zig cannot compile a project, the build is retried with the image's gcc;
the repair step then decides whether the result still meets manylinux_2_28.

Projects without compiled sources (or whose recipe says ``pure``) build once, with
``python -m build``, in the same image: cibuildwheel refuses to produce pure wheels.
"""

from __future__ import annotations

import dataclasses
import email.parser
import enum
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from factory.failures import BuildFailure, FailureClass
from factory.pipeline import repair
from factory.pipeline.buildenv import BuildEnvironment
from factory.pipeline.diagnose import classify, tail
from factory.pipeline.images import BuilderImage
from factory.pipeline.unpack import SourceTree
from factory.plumbing import podman
from factory.plumbing.processes import die_with_parent
from factory.recipes import Recipe
from factory.targets import Target, is_pure, serves

#: Files that mean "this project compiles something".
COMPILED_SUFFIXES = {".c", ".cc", ".cpp", ".cxx", ".c++", ".pyx", ".rs", ".f", ".f90", ".f95", ".go", ".cu"}
COMPILED_NAMES = {"Cargo.toml", "meson.build", "CMakeLists.txt"}
#: Directories whose sources are not part of the package (pycparser ships C examples, say).
NOT_PACKAGE_DIRS = {"test", "tests", "testing", "doc", "docs", "example", "examples", "bench", "benchmarks"}
#: cibuildwheel's exit code when the project produced a pure-Python wheel.
CIBW_PURE_WHEEL = 5
#: cibuildwheel's exit code when no configured Python matches the project's requires-python.
CIBW_NOTHING_TO_DO = 3
#: The environment that makes a build use the image's gcc instead of zig.
GCC_ENV = {"CC": "gcc", "CXX": "g++", "LDSHARED": "gcc -shared", "LDCXXSHARED": "g++ -shared", "AR": "ar"}


class BuildKind(enum.Enum):
    """How a project is built: with cibuildwheel per platform, or once as a pure-Python wheel."""

    PLATFORM = "platform"
    PURE = "pure"


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """What a build needs besides the tree and the recipe (resolved once from the config)."""

    timeout: float
    env: BuildEnvironment  # the build requirements' only source


@dataclasses.dataclass(frozen=True)
class TargetResult:
    """What became of one target: a wheel (repaired in the container), or a failure."""

    target: Target
    wheel: Path | None = None
    failure: BuildFailure | None = None


@dataclasses.dataclass(frozen=True)
class BuildOutput:
    """Every target's result, and how the builds were made."""

    kind: BuildKind
    results: tuple[TargetResult, ...]
    cibuildwheel_configs: tuple[str, ...]  # one per cibuildwheel run, as written


def compiled_sources(root: Path, limit: int = 5) -> list[str]:
    """Up to ``limit`` files under ``root`` that need a compiler, as paths relative to it."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in NOT_PACKAGE_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name in COMPILED_NAMES or os.path.splitext(name)[1].lower() in COMPILED_SUFFIXES:
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
                if len(found) >= limit:
                    return found
    return found


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def cibuildwheel_config(image: BuilderImage, recipe: Recipe, pythons: Sequence[str], toolchain: str,
                        settings: BuildSettings, label: str, epoch: int) -> str:
    """The complete cibuildwheel configuration for one architecture, as TOML."""
    arch = image.spec.arch
    create_args = [
        *podman.RUNTIME,
        "--network=none",
        f"--label={label}",
        f"--volume={image.spec.zig_cache_volume}:/opt/zig-cache",
        *(f"--volume={volume}" for volume in settings.env.volumes),
    ]
    env = {**recipe.env, **(GCC_ENV if toolchain == "gcc" else {}), **settings.env.variables,
           "SOURCE_DATE_EPOCH": str(epoch)}
    options = {
        "build": " ".join(f"cp{p.replace('.', '')}-*" for p in pythons),
        "skip": "*-musllinux_*",
        "archs": [arch.name],
        "build-frontend": "build",
        "build-verbosity": 1,
        "before-all": "",
        "before-build": "",
        "test-command": "",
        "audit-command": "",
        "environment": env,
        "environment-pass": [],
        "config-settings": dict(recipe.config_settings),
        "repair-wheel-command": repair.REPAIR_COMMAND,
        f"manylinux-{arch.name}-image": image.tag,
        "container-engine": {"name": "podman", "create-args": create_args, "disable-host-mount": True},
    }
    lines = ["# Written by factory for one build; the project's own cibuildwheel settings are not used.",
             "[tool.cibuildwheel]"]
    lines += [f"{key} = {_toml(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


def _environment(tree: SourceTree) -> dict[str, str]:
    """cibuildwheel's own environment on the host: the caller's, without CIBW_* (factory's config
    file says everything)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
    env["SOURCE_DATE_EPOCH"] = str(tree.epoch)
    return env


def run_logged(cmd: list[str], *, cwd: Path, env: dict[str, str], log_path: Path, timeout: float, label: str) -> tuple[int, str]:
    """Run a container command with its output going to ``log_path``; kill it (and its
    containers, found by ``label``) when it exceeds ``timeout`` seconds or is interrupted."""
    with log_path.open("ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=die_with_parent)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BuildFailure(
                FailureClass.TIMEOUT, f"the build ran longer than {timeout:.0f} s (raise build-timeout)",
                log_tail=tail(log_path.read_text(errors="replace")),
            ) from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
                podman.remove_labelled(label)
    return code, log_path.read_text(errors="replace")


def _wheels(out: Path) -> list[Path]:
    return sorted(out.glob("*.whl"))


def _requires_python(tree: SourceTree) -> SpecifierSet | None:
    pkg_info = tree.root / "PKG-INFO"
    if not pkg_info.is_file():
        return None
    value = email.parser.HeaderParser().parsestr(pkg_info.read_text(errors="replace")).get("Requires-Python")
    try:
        return SpecifierSet(value) if value else None
    except InvalidSpecifier:
        return None


class Builder:
    """Builds one tree with one recipe; each run gets its own config file, log and output."""

    def __init__(self, tree: SourceTree, recipe: Recipe, settings: BuildSettings, work: Path, label: str) -> None:
        self.tree, self.recipe, self.settings, self.work, self.label = tree, recipe, settings, work, label
        self.configs: list[str] = []

    def _cibuildwheel(self, image: BuilderImage, pythons: Sequence[str], toolchain: str) -> list[Path]:
        name = f"{image.spec.arch.name}-{'-'.join(p.replace('.', '') for p in pythons)}-{toolchain}"
        text = cibuildwheel_config(image, self.recipe, pythons, toolchain, self.settings, self.label, self.tree.epoch)
        self.configs.append(text)
        config_file = self.work / f"cibuildwheel-{name}.toml"
        config_file.write_text(text)
        out = self.work / f"wheelhouse-{name}"
        cmd = [sys.executable, "-m", "cibuildwheel", "--platform", "linux", "--output-dir", str(out),
               "--config-file", str(config_file.resolve()), "."]
        code, log = run_logged(cmd, cwd=self.tree.root, env=_environment(self.tree),
                               log_path=self.work / f"build-{name}.log", timeout=self.settings.timeout,
                               label=self.label)
        if code == CIBW_PURE_WHEEL:
            if not compiler_ran(log):  # the C files are not part of the build (tests, examples): it is pure
                raise PureAfterAll()
            sources = ", ".join(compiled_sources(self.tree.root))
            raise BuildFailure(
                FailureClass.COMPILE,
                f"the build made a pure-Python wheel although the sdist has compiled sources ({sources}) and a "
                "compiler ran: an optional extension was probably skipped, see the log (or set `pure = true` in "
                "the recipe)",
                log_tail=tail(log),
            )
        if code == CIBW_NOTHING_TO_DO:
            raise BuildFailure(
                FailureClass.NO_TARGET,
                f"the project's requires-python ({_requires_python(self.tree)}) excludes CPython {', '.join(pythons)}",
                log_tail=tail(log),
            )
        if code != 0:
            raise repair.policy_failure(log) or classify(log, "cibuildwheel")
        wheels = _wheels(out)
        if not wheels:
            raise BuildFailure(FailureClass.INTERNAL, "cibuildwheel succeeded but left no wheel", log_tail=tail(log))
        return wheels

    def _with_fallback(self, image: BuilderImage, pythons: Sequence[str]) -> list[Path]:
        """Build with the recipe's toolchain; if zig cannot compile it, once more with gcc."""
        try:
            return self._cibuildwheel(image, pythons, self.recipe.toolchain)
        except BuildFailure as zig:
            if self.recipe.toolchain != "zig" or zig.failure_class != FailureClass.COMPILE:
                raise
            try:
                return self._cibuildwheel(image, pythons, "gcc")
            except BuildFailure as gcc:
                raise BuildFailure(gcc.failure_class, f"with zig: {zig.reason}; with gcc: {gcc.reason}",
                                   log_tail=gcc.log_tail) from None

    def _assign(self, targets: Sequence[Target], wheels: Sequence[Path]) -> list[TargetResult]:
        results = []
        requires = _requires_python(self.tree)
        for target in targets:
            wheel = next((w for w in wheels if serves(w.name, target)), None)
            if wheel is not None:
                results.append(TargetResult(target, wheel))
                continue
            why = (f"the project's requires-python ({requires}) excludes CPython {target.python}"
                   if requires is not None and not requires.contains(target.python + ".0", prereleases=True)
                   else f"cibuildwheel made no wheel for {target} (made: {', '.join(w.name for w in wheels)})")
            results.append(TargetResult(target, failure=BuildFailure(FailureClass.NO_TARGET, why)))
        return results

    def platform(self, image: BuilderImage, targets: Sequence[Target]) -> list[TargetResult]:
        """Build every target of one architecture: all in one container, or one by one if that fails."""
        try:
            return self._assign(targets, self._with_fallback(image, [t.python for t in targets]))
        except BuildFailure as combined:
            if len(targets) == 1:
                return [TargetResult(targets[0], failure=combined)]
        results = []
        for target in targets:
            try:
                results += self._assign([target], self._with_fallback(image, [target.python]))
            except BuildFailure as failure:
                results.append(TargetResult(target, failure=failure))
        return results

    def pure(self, image: BuilderImage, python: str) -> list[Path]:
        """Build once with ``python -m build --wheel`` (the tree is mounted read-only)."""
        out = self.work / "wheelhouse-pure"
        out.mkdir(parents=True, exist_ok=True)
        cp = "cp" + python.replace(".", "")
        settings = " ".join(
            shlex.quote(f"--config-setting={k}={v}")
            for k, values in self.recipe.config_settings.items()
            for v in ([values] if isinstance(values, str) else values)
        )
        script = (f'work=$(mktemp -d) && cp -a /src "$work/src" && cd "$work/src" && '
                  f"/opt/python/{cp}-{cp}/bin/python -m build --wheel --outdir /out {settings} .")
        variables = {**self.recipe.env, **self.settings.env.variables, "SOURCE_DATE_EPOCH": str(self.tree.epoch)}
        cmd = podman.run_args(image.tag, network="none", label=self.label,
                              volumes=[f"{self.tree.root.resolve()}:/src:ro", f"{out.resolve()}:/out",
                                       *self.settings.env.volumes], pass_env=list(variables))
        env = {**_environment(self.tree), **variables}
        code, log = run_logged([*cmd, "sh", "-c", script], cwd=self.tree.root, env=env,
                               log_path=self.work / "build-pure.log", timeout=self.settings.timeout, label=self.label)
        if code != 0:
            raise classify(log, "python -m build")
        wheels = _wheels(out)
        if not wheels:
            raise BuildFailure(FailureClass.INTERNAL, "python -m build succeeded but left no wheel", log_tail=tail(log))
        return wheels


def build(tree: SourceTree, recipe: Recipe, images: Mapping[str, BuilderImage], targets: Sequence[Target],
          settings: BuildSettings, work: Path, label: str) -> BuildOutput:
    """Build ``tree`` for ``targets`` (each target's architecture must have an image)."""
    builder = Builder(tree, recipe, settings, work, label)
    if recipe.pure or not compiled_sources(tree.root):
        pure = _pure(builder, images, targets)
        if pure is not None:
            return pure
        # It compiled something after all: build it the platform way.
    results: list[TargetResult] = []
    try:
        for arch in dict.fromkeys(t.arch for t in targets):
            results += builder.platform(images[arch], [t for t in targets if t.arch == arch])
    except PureAfterAll:
        return _pure(builder, images, targets) or BuildOutput(BuildKind.PURE, tuple(
            TargetResult(t, failure=BuildFailure(FailureClass.COMPILE, "the pure build made a platform wheel, and the "
                                                                       "platform build a pure one")) for t in targets), ())
    return BuildOutput(BuildKind.PLATFORM, tuple(results), tuple(builder.configs))


def _pure(builder: Builder, images: Mapping[str, BuilderImage], targets: Sequence[Target]) -> BuildOutput | None:
    """The pure build's output, or None when it made a platform wheel after all."""
    try:
        wheels = builder.pure(images[targets[0].arch], targets[0].python)
    except BuildFailure as failure:
        return BuildOutput(BuildKind.PURE, tuple(TargetResult(t, failure=failure) for t in targets), ())
    if all(is_pure(w.name) for w in wheels):
        return BuildOutput(BuildKind.PURE, tuple(TargetResult(t, wheels[0]) for t in targets), ())
    return None


class PureAfterAll(Exception):
    """cibuildwheel made a pure wheel and no compiler ran: the sdist's C files are not built."""


#: A compiler invoked on a source file, or setuptools announcing an extension, in a build log.
_COMPILED = re.compile(r"^building '[^']+' extension|\b(?:zig-cc|zig-c\+\+|gcc|g\+\+|cc|c\+\+|clang)\s.*\s-c\s",
                       re.M)


def compiler_ran(log: str) -> bool:
    """Whether a build log shows compilation being attempted."""
    return _COMPILED.search(log) is not None
