"""How fast is `factory ingest`? One run: a generated 1,000,000-line combined access log, ingested
into an empty queue, against `awk '$9==404{print $7}' | sort | uniq -c` on the same file.
Aim: factory within 2x of the shell pipeline.

    .venv/bin/python bench/ingest_speed.py [--lines N]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UAS = ['pip/26.0 {"cpu":"x86_64","implementation":{"name":"CPython","version":"3.11.7"}}',
       'uv/0.13.0 {"cpu":"aarch64","implementation":{"name":"CPython","version":"3.13.1"}}', "curl/8.5"]


def generate(path: Path, lines: int, seed: int = 1) -> int:
    """A log where one request in five is a 404 on a package (projects follow a Zipf-like law)."""
    rng = random.Random(seed)
    projects = [f"project-{i}" for i in range(5000)]
    weights = [1 / (i + 1) for i in range(len(projects))]
    chosen = rng.choices(projects, weights, k=lines)
    misses = 0
    with path.open("w") as f:
        for n, project in enumerate(chosen):
            client = f"10.{n % 7}.{(n * 7) % 251}.{(n * 13) % 253}"
            second = n // 12
            stamp = f"22/Nov/2026:{(second // 3600) % 24:02d}:{(second // 60) % 60:02d}:{second % 60:02d} +0000"
            roll = rng.random()
            if roll < 0.10:
                path_, status = f"/simple/{project}/", 404
            elif roll < 0.20:
                version = f"{rng.randint(1, 5)}.{rng.randint(0, 9)}"
                path_, status = f"/packages/xx/{project.replace('-', '_')}-{version}.tar.gz", 404
            else:
                path_, status = f"/simple/{project}/", 200
            misses += status == 404
            f.write(f'{client} - - [{stamp}] "GET {path_} HTTP/1.1" {status} 512 "-" "{UAS[n % 3]}"\n')
    return misses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="factory-bench-") as tmp:
        log = Path(tmp) / "access.log"
        misses = generate(log, args.lines)
        size = log.stat().st_size
        log.read_bytes()  # both start with the file in the page cache
        started = time.perf_counter()
        shell = subprocess.run(f"awk '$9==404{{print $7}}' {log} | sort | uniq -c | wc -l", shell=True,
                               capture_output=True, text=True, check=True, env={**os.environ, "LC_ALL": "C"})
        awk = time.perf_counter() - started
        env = {**os.environ, "FACTORY_STATE_DIR": str(Path(tmp) / "state"), "FACTORY_UPSTREAM": "http://127.0.0.1:9/"}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "factory", "ingest", str(log)], capture_output=True, text=True,
                              env=env)
        ingest = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(done.stderr)
    print(f"{args.lines} lines ({size / 1e6:.0f} MB), {misses} 404s on packages")
    print(f"  awk | sort | uniq -c:  {awk:6.2f} s  ({shell.stdout.strip()} distinct paths)")
    print(f"  factory ingest:        {ingest:6.2f} s  ({done.stdout.strip()})")
    print(f"  ratio factory/awk: {ingest / awk:.2f}  (aim: <= 2)")


if __name__ == "__main__":
    main()
