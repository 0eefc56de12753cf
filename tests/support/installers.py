"""Real pip and uv installs into fresh venvs, isolated from this machine's configuration, for
tests that check which file an installer took."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import isolated_pip_env

UV = str(Path(sys.executable).parent / "uv")


def uv_env() -> dict[str, str]:
    """uv with no configuration but ours (with --no-config): no UV_* or PIP_* variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}


def pip_venv(path: Path, index_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A venv without pip (so that all it holds is what was installed), installed into by pip."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return subprocess.run([sys.executable, "-m", "pip", "--python", str(path / "bin" / "python"), "install",
                           "--isolated", "--no-cache-dir", "--index-url", index_url, *args],
                          capture_output=True, text=True, env=isolated_pip_env())


def uv_venv(path: Path, index_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A venv made by uv, installed into by ``uv pip install``."""
    subprocess.run([UV, "venv", "--no-config", "-q", str(path)], check=True, env=uv_env())
    return subprocess.run([UV, "pip", "install", "--no-config", "--no-cache", "--python", str(path / "bin" / "python"),
                           "--index-url", index_url, *args], capture_output=True, text=True, env=uv_env())


def values(python: Path, *modules: str) -> list[str]:
    """Each module's ``VALUE`` (the tests' wheels say whose they are)."""
    code = "; ".join(f"import {m}" for m in modules) + "; print(" + ", ".join(f"{m}.VALUE" for m in modules) + ")"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()
