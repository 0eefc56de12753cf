"""The index at scale, in one run, on a synthetic manifest of 10,000 projects and 100,000 files:

1. a full publish (`factory publish --rebuild`: every page, HTML and JSON) against dumb-pypi
   (installed into a throwaway venv, for this benchmark only) on the same file list; aim: 3x faster;
2. publishing one more wheel into it (aim: < 50 ms, 1-2 pages touched);
3. a bounded loopback load on `factory serve` (project pages, both forms): requests per second
   and errors.

    .venv/bin/python bench/index_scale.py [--projects N] [--files-per-project N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, load

from factory.index.distfile import inspect_wheel
from factory.index.manifest import FileEntry, Manifest
from factory.index.publish import file_path, publish

sys.path.insert(0, str(ROOT / "tests"))
from support.server import running  # noqa: E402
from support.wheels import make_wheel  # noqa: E402


def synthetic(index: Path, projects: int, per_project: int) -> list[FileEntry]:
    rng = random.Random(7)
    entries = []
    for p in range(projects):
        name = f"project-{p:05d}"
        for v in range(per_project):
            filename = f"project_{p:05d}-{v // 2 + 1}.{v % 2}-py3-none-any.whl"
            sha = rng.randbytes(32).hex()
            entries.append(FileEntry(filename, name, f"{v // 2 + 1}.{v % 2}", sha, rng.randint(2_000, 9_000_000),
                                     ">=3.8", rng.randbytes(32).hex(), "2026-11-22T10:00:00.000000Z", None,
                                     file_path(sha, filename)))
    with Manifest(index / "manifest.sqlite3") as manifest:
        manifest.add(entries)
    return entries


def dumb_pypi(entries: list[FileEntry], work: Path) -> float:
    venv = work / "dumb-pypi-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "dumb-pypi"], check=True)
    listing = work / "packages.json"
    with listing.open("w") as f:
        for e in entries:
            f.write(json.dumps({"filename": e.filename, "hash": f"sha256={e.sha256}", "requires_python": e.requires_python,
                                "core_metadata": f"sha256={e.metadata_sha256}", "upload_timestamp": 1795000000}) + "\n")
    started = time.perf_counter()
    subprocess.run([str(venv / "bin" / "dumb-pypi"), "--package-list-json", str(listing), "--output-dir",
                    str(work / "dumb-out"), "--packages-url", "../../files/", "--no-per-release-json",
                    "--no-generate-timestamp"], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--files-per-project", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="factory-bench-") as tmp:
        work = Path(tmp)
        index = work / "index"
        entries = synthetic(index, args.projects, args.files_per_project)
        env = {**os.environ, "FACTORY_INDEX_DIR": str(index), "FACTORY_STATE_DIR": str(work / "state"),
               "FACTORY_UPSTREAM": "http://127.0.0.1:9/"}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "factory", "publish", "--rebuild"], check=True, env=env, capture_output=True)
        ours = time.perf_counter() - started
        theirs = dumb_pypi(entries, work)
        print(f"{args.projects} projects, {len(entries)} files")
        print(f"  full publish: factory {ours:6.2f} s (HTML + JSON pages), dumb-pypi {theirs:6.2f} s; "
              f"factory is {theirs / ours:.1f}x faster (aim: >= 3x)")

        base = index.resolve().as_uri() + "/"
        times, touched = [], []
        for n in range(7):
            dist = inspect_wheel(make_wheel(work / "new", f"project-{n * 997 % args.projects:05d}", "99.0", body=str(n)))
            started = time.perf_counter()
            done = publish(index, [dist], base)
            times.append(time.perf_counter() - started)
            touched.append(len(done.pages))
        new_project = inspect_wheel(make_wheel(work / "new", "brand-new-project", "1.0"))
        started = time.perf_counter()
        done = publish(index, [new_project], base)
        new_time = time.perf_counter() - started
        print(f"  one more wheel: median {statistics.median(times) * 1000:.1f} ms (max {max(times) * 1000:.1f} ms), "
              f"pages touched {max(touched)}; a new project: {new_time * 1000:.1f} ms, pages touched {len(done.pages)} "
              f"(aim: < 50 ms, 1-2 pages)")

        paths = [f"/simple/project-{p:05d}/" for p in range(0, args.projects, max(1, args.projects // 2000))]
        with running(index, work / "serve-state", "--no-fallback") as url:
            ok, errors = asyncio.run(load(url, paths, args.seconds))
        print(f"  factory serve, {args.seconds:.0f} s, 16 concurrent loopback clients: {ok / args.seconds:.0f} requests/s, "
              f"{errors} errors")


if __name__ == "__main__":
    main()
