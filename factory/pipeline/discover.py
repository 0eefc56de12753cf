"""Discover a project's dynamic build requirements (``get_requires_for_build_wheel``) with
pypa/build in the builder container: no network, factory's index the only package source
(the static requirements must be there already). Results are cached by everything they depend
on: the sdist, the recipe, the static pins, the image and the Pythons."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from factory.failures import BuildFailure, FailureClass
from factory.pipeline.buildenv import BuildEnvironment
from factory.pipeline.diagnose import classify, tail
from factory.pipeline.images import BuilderImage
from factory.pipeline.unpack import SourceTree
from factory.plumbing import podman
from factory.plumbing.files import write_text
from factory.recipes import Recipe

MARK = "FACTORY-REQUIRES "


def script(pythons: Sequence[str], settings: Mapping[str, object]) -> str:
    """Shell for the container: copy the read-only tree, then ask each CPython's pypa/build."""
    steps = ['set -e', 'work=$(mktemp -d)', 'cp -a /src "$work/src"', 'cd "$work/src"']
    config = shlex.quote(json.dumps(settings))
    for python in pythons:
        cp = "cp" + python.replace(".", "")
        steps.append(f'/opt/python/{cp}-{cp}/bin/python /usr/local/bin/factory-build-requires "$work/src" {config}')
    return "\n".join(steps)


def parse(output: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """python -> (static, dynamic) from the script's output."""
    found = {}
    for line in output.splitlines():
        if line.startswith(MARK):
            data = json.loads(line[len(MARK):])
            found[data["python"]] = (tuple(data["static"]), tuple(data["dynamic"]))
    return found


def combined(found: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> tuple[str, ...]:
    """Every requirement any CPython asked for; one asked for by some CPythons only is limited
    to them by a marker."""
    pythons = sorted(found)
    asked: dict[str, list[str]] = {}
    for python in pythons:
        static, dynamic = found[python]
        for requirement in (*static, *dynamic):
            asked.setdefault(requirement, []).append(python)
    out = []
    for requirement, where in asked.items():
        if where == pythons:
            out.append(requirement)
            continue
        only = " or ".join(f"python_version == '{p}'" for p in where)
        base, _, marker = requirement.partition(";")
        out.append(f"{base.strip()} ; ({marker.strip()}) and ({only})" if marker.strip() else f"{base.strip()} ; {only}")
    return tuple(sorted(out))


def discover(tree: SourceTree, recipe: Recipe, image: BuilderImage, pythons: Sequence[str], env: BuildEnvironment,
             cache_dir: Path, work: Path, label: str, timeout: float) -> tuple[str, ...]:
    """Every build requirement the project asks for, static and dynamic, on ``pythons``."""
    constraints = (env.context / "constraints.txt").read_text()
    key = hashlib.sha256(json.dumps([tree.source.sha256, recipe.digest, constraints, image.id, sorted(pythons),
                                     dict(recipe.env), dict(recipe.config_settings)], sort_keys=True,
                                    default=list).encode()).hexdigest()
    cached = cache_dir / "requires" / key[:2] / f"{key}.json"
    if cached.is_file():
        return tuple(json.loads(cached.read_text()))
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in recipe.config_settings.items()}
    variables = {**env.variables, **recipe.env}
    cmd = podman.run_args(image.tag, network="none", label=label, volumes=[f"{tree.root.resolve()}:/src:ro",
                          *env.volumes], pass_env=list(variables))
    log_path = work / "build-requires.log"
    try:
        done = subprocess.run([*cmd, "sh", "-c", script(pythons, settings)], capture_output=True, text=True,
                              timeout=timeout, check=False, env={**os.environ, **variables})
    except subprocess.TimeoutExpired:
        podman.remove_labelled(label)
        raise BuildFailure(FailureClass.TIMEOUT, f"discovering the build requirements ran longer than {timeout:.0f} s") \
            from None
    output = done.stdout + done.stderr
    with log_path.open("a") as log:  # appended, as build logs are: each round of a build reads what it added
        log.write(output)
    found = parse(done.stdout)
    if done.returncode != 0 or set(found) != set(pythons):
        failure = classify(output, "discovering the build requirements (get_requires_for_build_wheel)")
        raise BuildFailure(failure.failure_class, failure.reason, log_tail=tail(output))
    requirements = combined(found)
    write_text(cached, json.dumps(list(requirements)))
    return requirements
