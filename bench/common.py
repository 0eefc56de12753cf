"""What the benchmarks share: fixture sdists on a local index, and timing `factory build`."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.index_server import LocalIndex  # noqa: E402
from support.sdists import make_sdist  # noqa: E402

from factory import config  # noqa: E402
from factory.sigstore_stack import LocalSigstore  # noqa: E402

__all__ = ["LocalIndex", "ROOT", "fixture_index", "make_sdist", "signing", "time_factory_build"]


@contextlib.contextmanager
def signing(state: Path) -> Iterator[None]:
    """A local Sigstore stack for the benchmark's builds, named to them through the environment."""
    with LocalSigstore(state) as stack:
        saved = dict(os.environ)
        os.environ.update(FACTORY_SIGNING="local", FACTORY_LOCAL_SIGSTORE=stack.url,
                          FACTORY_TRUST_CONFIG=str(stack.trust_config_path),
                          FACTORY_LOCAL_SIGSTORE_SECRET=str(stack.token_secret_path))
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def fixture_index(project: str, dest: Path) -> tuple[LocalIndex, Path]:
    """A local index serving ``tests/projects/<project>`` 1.0.0; use it as a context manager."""
    index = LocalIndex(fallback=config.pip_index_url())
    sdist = make_sdist(project, "1.0.0", dest)
    index.add_file(project, sdist)
    return index, sdist


def time_factory_build(index_url: str, work: Path, spec: str, **env: str) -> tuple[float, dict]:
    """Run the ``factory build`` CLI into an empty index; its wall time and its record."""
    environ = {**os.environ, "FACTORY_UPSTREAM": index_url, "FACTORY_INDEX_DIR": str(work / "index"),
               "FACTORY_STATE_DIR": str(work / "state"), "FACTORY_RECIPES_DIR": str(work / "recipes"), **env}
    (work / "recipes").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "factory", "build", spec], capture_output=True, text=True, env=environ)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"factory build {spec} failed:\n{done.stdout}{done.stderr}")
    (record,) = (work / "state" / "records").glob("*/*.json")
    return elapsed, json.loads(record.read_text())
