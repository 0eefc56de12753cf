"""The recipe's smoke test: install a repaired wheel in a clean container of its target's
architecture and import it (and run a command). A wheel that fails is not published."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from factory.failures import BuildFailure, FailureClass
from factory.pipeline.diagnose import tail
from factory.pipeline.images import BuilderImage
from factory.plumbing import podman
from factory.recipes import SmokeTest
from factory.targets import Target


def script(wheel_name: str, target: Target, test: SmokeTest) -> str:
    """The shell run in the test container: a fresh venv holding only the wheel (and the
    test's own requirements), then the imports and the command, outside the source tree."""
    python = f"/opt/python/{target.cp}-{target.cp}/bin/python"
    steps = [
        "set -e",
        'work=$(mktemp -d) && venv="$work/venv"',  # a directory of the container's own choosing
        f'{python} -m venv --without-pip "$venv"',
        f'{python} -m pip --python "$venv/bin/python" install --quiet --no-deps /wheels/{shlex.quote(wheel_name)}',
    ]
    if test.requires:
        requires = " ".join(shlex.quote(r) for r in test.requires)
        steps.append(f'{python} -m pip --python "$venv/bin/python" install --quiet --only-binary=:all: {requires}')
    steps.append('cd "$work"')
    for module in test.imports:
        steps.append(f"echo {shlex.quote('smoke: import ' + module)}")
        steps.append(f'"$venv/bin/python" -c {shlex.quote("import " + module)}')
    if test.command:
        steps.append(f"echo {shlex.quote('smoke: ' + test.command)}")
        steps.append(f'PATH="$venv/bin:$PATH" sh -c {shlex.quote(test.command)}')
    return "\n".join(steps)


def run(wheel: Path, target: Target, image: BuilderImage, test: SmokeTest, network: str, label: str,
        timeout: float) -> None:
    """Smoke-test ``wheel`` for ``target`` in a new container; raise a ``test`` failure if it fails."""
    # The test needs no network unless it installs requirements: that proves the wheel self-contained.
    cmd = podman.run_args(image.tag, network=network if test.requires else "none", label=label,
                          volumes=[f"{wheel.parent.resolve()}:/wheels:ro"], pass_env=["PIP_INDEX_URL"])
    try:
        done = subprocess.run([*cmd, "sh", "-c", script(wheel.name, target, test)], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        podman.remove_labelled(label)
        raise BuildFailure(FailureClass.TEST, f"the smoke test of {wheel.name} on {target} timed out") from None
    if done.returncode != 0:
        output = done.stdout + done.stderr
        last = [line for line in output.splitlines() if line.strip()][-1:] or ["no output"]
        step = [line for line in done.stdout.splitlines() if line.startswith("smoke: ")][-1:] or ["install"]
        raise BuildFailure(FailureClass.TEST, f"smoke test on {target} failed at `{step[0].removeprefix('smoke: ')}`: {last[0]}",
                           log_tail=tail(output))

