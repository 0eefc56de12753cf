"""The few podman calls factory makes, in one place. runc, always: crun fails on this kind of host."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from factory.failures import FactoryError

RUNTIME = ("--runtime", "runc")


def podman(*args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS``, capturing its output; a failure raises :class:`FactoryError`."""
    try:
        done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise FactoryError("podman is not installed: run `just setup` (or containers/host-setup)") from None
    if check and done.returncode != 0:
        raise FactoryError(f"podman {' '.join(args[:3])} failed: {done.stderr.strip()[-2000:]}")
    return done


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def image_id(ref: str) -> str:
    return podman("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


def remove_labelled(label: str) -> None:
    """Force-remove every container carrying ``label`` (e.g. after a build timed out)."""
    ids = podman("ps", "--all", "--quiet", "--filter", f"label={label}", check=False).stdout.split()
    if ids:
        podman("rm", "--force", *ids, check=False)


def run_args(
    image: str, *, network: str, label: str, volumes: Sequence[str] = (), pass_env: Sequence[str] = ()
) -> list[str]:
    """Arguments for a one-off ``podman run`` in a builder image: no host mount but ``volumes``,
    and the caller's values of the variables named in ``pass_env``."""
    args = ["podman", "run", "--rm", *RUNTIME, f"--network={network}", f"--label={label}"]
    args += [f"--volume={volume}" for volume in volumes]
    args += [f"--env={name}" for name in pass_env]
    return [*args, image]
