"""What the benchmarks share: fixture sdists on a local index, and timing `factory build`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
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

__all__ = ["LocalIndex", "ROOT", "fixture_index", "load", "make_sdist", "signing", "time_factory_build", "warm_copy"]


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
    """Run the ``factory build`` CLI with ``work``'s index and state (empty, or a ``warm_copy``,
    whose build requirements are there already); its wall time and the record of ``spec``."""
    environ = {**os.environ, "FACTORY_UPSTREAM": index_url, "FACTORY_INDEX_DIR": str(work / "index"),
               "FACTORY_STATE_DIR": str(work / "state"), "FACTORY_RECIPES_DIR": str(ROOT / "recipes"), **env}
    before = set((work / "state" / "records").glob("*/*.json"))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "factory", "build", spec], capture_output=True, text=True, env=environ)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"factory build {spec} failed:\n{done.stdout}{done.stderr}")
    project = spec.split("==")[0]
    records = sorted(set((work / "state" / "records").glob(f"{project}/*.json")) - before)
    return elapsed, json.loads(records[-1].read_text())


def warm_copy(source: Path, dest: Path, project: str) -> None:
    """``dest``: ``source``'s index without ``project`` (its build requirements stay) and its
    state's caches (the sdist, the resolution, the discovered requirements): what a running
    factory has when a new release of a known kind of project comes in."""
    from factory.index.manifest import Manifest
    from factory.index.publish import rebuild

    shutil.copytree(source / "index", dest / "index", symlinks=True)
    shutil.copytree(source / "state" / "cache", dest / "state" / "cache")
    with Manifest.of(dest / "index") as manifest:
        for entry in manifest.files(project):  # its files and pages too: a server would still offer them
            for path in (dest / "index" / entry.path).parent.glob(entry.filename + "*"):
                path.unlink()
        manifest.db.execute("DELETE FROM files WHERE project = ?", (project,))
    (dest / "index" / "simple" / project).unlink(missing_ok=True)  # a link to its current generation of pages
    shutil.rmtree(dest / "index" / "simple" / ".pages" / project, ignore_errors=True)
    rebuild(dest / "index", "")  # the pages as a default config writes them


async def load(url: str, paths: list[str], seconds: float, concurrency: int = 16, expect: int = 200,
               user_agent: str | None = None) -> tuple[int, int]:
    """Loopback load: ``concurrency`` clients GET random ``paths`` (half asking for JSON, half
    for HTML) for ``seconds``; (answers with status ``expect``, other answers and errors)."""
    import httpx

    done = errors = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency)
    headers = {"User-Agent": user_agent} if user_agent else {}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10, headers=headers) as client:
        async def one(worker: int) -> None:
            nonlocal done, errors
            rng = random.Random(worker)
            while time.monotonic() < deadline:
                accept = "application/vnd.pypi.simple.v1+json" if rng.random() < 0.5 else "text/html"
                try:
                    response = await client.get(rng.choice(paths), headers={"Accept": accept})
                    ok = response.status_code == expect
                except httpx.HTTPError:
                    ok = False
                done += ok
                errors += not ok
        await asyncio.gather(*(one(w) for w in range(concurrency)))
    return done, errors
