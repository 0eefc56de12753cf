"""Stage 4, build: turn an unpacked sdist into wheels inside factory's builder image.

Projects with compiled sources go through cibuildwheel, with a config file factory writes and
``--config-file`` always given, so a project's own ``[tool.cibuildwheel]`` (and its shell
hooks) is never obeyed; ``CIBW_*`` variables from the caller's environment are dropped too.
The container runs with ``--runtime runc``, no host mount, and the image's zig toolchain.
Projects without compiled sources build once, with ``python -m build``, in the same image:
cibuildwheel refuses to produce pure wheels.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from packaging.utils import parse_wheel_filename

from factory import podman, repair
from factory.diagnose import classify, tail
from factory.failures import BuildFailure, FailureClass
from factory.images import BuilderImage
from factory.unpack import SourceTree

#: Files that mean "this project compiles something".
COMPILED_SUFFIXES = {".c", ".cc", ".cpp", ".cxx", ".c++", ".pyx", ".rs", ".f", ".f90", ".f95", ".go", ".cu"}
COMPILED_NAMES = {"Cargo.toml", "meson.build", "CMakeLists.txt"}
#: Directories whose sources are not part of the package (pycparser ships C examples, say).
NOT_PACKAGE_DIRS = {"test", "tests", "testing", "doc", "docs", "example", "examples", "bench", "benchmarks"}
#: cibuildwheel's exit code when the project produced a pure-Python wheel.
CIBW_PURE_WHEEL = 5
#: cibuildwheel's exit code when no configured Python matches the project's requires-python.
CIBW_NOTHING_TO_DO = 3


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """What a build needs besides the source tree (resolved once from the config)."""

    pythons: tuple[str, ...]
    network: str
    timeout: float
    upstream: str  # where pip in the container finds build dependencies


@dataclasses.dataclass(frozen=True)
class BuildOutput:
    """Wheels as they left the container (repaired there), and how they were made."""

    wheels: tuple[Path, ...]
    kind: str  # "platform" (cibuildwheel) or "pure" (python -m build)
    image: BuilderImage
    cibuildwheel_config: str  # the config file factory wrote; "" for a pure build
    log: Path


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
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def cibuildwheel_config(image: BuilderImage, settings: BuildSettings, label: str) -> str:
    """The complete cibuildwheel configuration for one architecture, as TOML."""
    arch = image.spec.arch
    create_args = [
        *podman.RUNTIME,
        f"--network={settings.network}",
        f"--label={label}",
        f"--volume={image.spec.zig_cache_volume}:/opt/zig-cache",
    ]
    options = {
        "build": " ".join(f"cp{p.replace('.', '')}-*" for p in settings.pythons),
        "skip": "*-musllinux_*",
        "archs": [arch.name],
        "build-frontend": "build",
        "build-verbosity": 1,
        "before-all": "",
        "before-build": "",
        "test-command": "",
        "audit-command": "",
        "environment-pass": ["PIP_INDEX_URL"],
        "repair-wheel-command": repair.REPAIR_COMMAND,
        f"manylinux-{arch.name}-image": image.tag,
        "container-engine": {"name": "podman", "create-args": create_args, "disable-host-mount": True},
    }
    lines = ["# Written by factory for one build; the project's own cibuildwheel settings are not used.",
             "[tool.cibuildwheel]"]
    lines += [f"{key} = {_toml(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


def _environment(tree: SourceTree, settings: BuildSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
    env["PIP_INDEX_URL"] = settings.upstream
    env["SOURCE_DATE_EPOCH"] = str(tree.epoch)
    return env


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], log_path: Path, timeout: float, label: str) -> tuple[int, str]:
    """Run a build command with its output going to ``log_path``; kill it (and its container)
    when it exceeds ``timeout`` seconds."""
    with log_path.open("ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            podman.remove_labelled(label)
            text = log_path.read_text(errors="replace")
            raise BuildFailure(
                FailureClass.TIMEOUT, f"the build ran longer than {timeout:.0f} s (raise build-timeout)", log_tail=tail(text)
            ) from None
        finally:
            if proc.poll() is None:  # interrupted: leave no container behind
                os.killpg(proc.pid, 9)
                proc.wait()
                podman.remove_labelled(label)
    return code, log_path.read_text(errors="replace")


def _wheels(out: Path) -> tuple[Path, ...]:
    return tuple(sorted(out.glob("*.whl")))


def build_platform(tree: SourceTree, image: BuilderImage, settings: BuildSettings, work: Path, label: str) -> BuildOutput:
    """Build with cibuildwheel for the image's architecture and every configured Python."""
    config_text = cibuildwheel_config(image, settings, label)
    config_file = work / "cibuildwheel.toml"
    config_file.write_text(config_text)
    out = work / f"wheelhouse-{image.spec.arch.name}"
    log_path = work / f"build-{image.spec.arch.name}.log"
    cmd = [sys.executable, "-m", "cibuildwheel", "--platform", "linux", "--output-dir", str(out),
           "--config-file", str(config_file.resolve()), "."]
    code, log = _run(cmd, cwd=tree.root, env=_environment(tree, settings), log_path=log_path,
                     timeout=settings.timeout, label=label)
    if code == CIBW_PURE_WHEEL:
        sources = ", ".join(compiled_sources(tree.root))
        raise BuildFailure(
            FailureClass.COMPILE,
            f"the build made a pure-Python wheel although the sdist has compiled sources ({sources}): "
            "an optional extension was probably skipped, see the log",
            log_tail=tail(log),
        )
    if code == CIBW_NOTHING_TO_DO:
        raise BuildFailure(
            FailureClass.NO_TARGET,
            f"the project's requires-python excludes every configured Python ({', '.join(settings.pythons)})",
            log_tail=tail(log),
        )
    if code != 0:
        raise repair.policy_failure(log) or classify(log, "cibuildwheel")
    wheels = _wheels(out)
    if not wheels:
        raise BuildFailure(FailureClass.INTERNAL, "cibuildwheel succeeded but left no wheel", log_tail=tail(log))
    return BuildOutput(wheels, "platform", image, config_text, log_path)


def build_pure(tree: SourceTree, image: BuilderImage, settings: BuildSettings, work: Path, label: str) -> BuildOutput:
    """Build a project without compiled sources once, with ``python -m build --wheel``."""
    out = work / "wheelhouse-pure"
    out.mkdir(parents=True, exist_ok=True)
    log_path = work / "build-pure.log"
    tag = "cp" + settings.pythons[0].replace(".", "")
    python = f"/opt/python/{tag}-{tag}/bin/python"
    # The tree is mounted read-only; the backend writes into a copy.
    script = f"cp -a /src /tmp/src && cd /tmp/src && {python} -m build --wheel --outdir /out ."
    cmd = podman.run_args(image.tag, network=settings.network, label=label,
                          volumes=[f"{tree.root.resolve()}:/src:ro", f"{out.resolve()}:/out"],
                          pass_env=["PIP_INDEX_URL", "SOURCE_DATE_EPOCH"])
    cmd += ["sh", "-c", script]
    code, log = _run(cmd, cwd=tree.root, env=_environment(tree, settings), log_path=log_path,
                     timeout=settings.timeout, label=label)
    if code != 0:
        raise classify(log, "python -m build")
    wheels = _wheels(out)
    if not wheels:
        raise BuildFailure(FailureClass.INTERNAL, "python -m build succeeded but left no wheel", log_tail=tail(log))
    return BuildOutput(wheels, "pure", image, "", log_path)


def is_pure(wheel: Path) -> bool:
    return all(t.platform == "any" for t in parse_wheel_filename(wheel.name)[3])


def build(tree: SourceTree, images: list[BuilderImage], settings: BuildSettings, work: Path, label: str) -> list[BuildOutput]:
    """Build ``tree``: once if it has no compiled sources, else once per architecture's image.

    A project that looked pure but made a platform wheel (a build script compiling something
    under an unexpected name) is built again the platform way.
    """
    if not compiled_sources(tree.root):
        started = time.monotonic()
        pure = build_pure(tree, images[0], settings, work, label)
        if all(is_pure(w) for w in pure.wheels):
            return [pure]
        with pure.log.open("a") as log:
            log.write(f"\nfactory: not pure after all ({time.monotonic() - started:.1f} s); building per architecture\n")
    return [build_platform(tree, image, settings, work, label) for image in images]
