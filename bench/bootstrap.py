"""What bootstrapping build requirements costs: markupsafe 3.0.2 (cp311-x86_64) from the real
upstream (pip's configured index).

- cold: into an empty index and state: every build requirement is rebuilt first; how many builds,
  how long;
- warm: the same request again into an index that has its build requirements (and a state whose
  caches know the resolution and the discovery): no extra build; how long, and how much of it the
  build-requirements stage takes;
- baseline (``--baseline REV``): the same warm build with factory at an earlier revision (a git
  worktree, the same venv), for the overhead against it; REV's own builder image must exist.

    .venv/bin/python bench/bootstrap.py [--rounds N] [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, signing, warm_copy

SPEC = "markupsafe==3.0.2"
ONE_TARGET = {"FACTORY_ARCHS": "x86_64", "FACTORY_PYTHONS": "3.11"}


def factory_build(work: Path, checkout: Path = ROOT) -> tuple[float, list[dict]]:
    """``factory build SPEC`` with ``work``'s index and state; wall time and every record written."""
    env = {**os.environ, **ONE_TARGET, "FACTORY_INDEX_DIR": str(work / "index"), "FACTORY_STATE_DIR": str(work / "state"),
           "FACTORY_RECIPES_DIR": str(checkout / "recipes"), "FACTORY_CONTAINERS_DIR": str(checkout / "containers"),
           "PYTHONPATH": str(checkout)}
    before = set((work / "state" / "records").glob("*/*.json"))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "factory", "build", SPEC], capture_output=True, text=True, env=env,
                          cwd=checkout)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"factory build {SPEC} failed:\n{done.stdout}{done.stderr}")
    records = [json.loads(p.read_text()) for p in sorted(set((work / "state" / "records").glob("*/*.json")) - before)]
    return elapsed, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="REV", help="also time the warm build with factory at REV")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="factory-bench-") as tmp, signing(Path(tmp) / "sigstore"):
        cold_dir = Path(tmp) / "cold"
        cold, records = factory_build(cold_dir)
        built = [r for r in records if r["published"]]
        print(f"{SPEC}, cp311-x86_64, from the upstream pip is configured with")
        print(f"  cold, empty index: {cold:6.1f} s, {len(built)} builds "
              f"({', '.join(r['request'] for r in built)})")
        warm, stage = [], []
        for n in range(args.rounds):
            work = Path(tmp) / f"warm-{n}"
            warm_copy(cold_dir, work, "markupsafe")
            elapsed, records = factory_build(work)
            if [r["request"] for r in records if r["published"]] != [SPEC]:
                sys.exit(f"the warm build built more than {SPEC}: {[r['request'] for r in records]}")
            warm.append(elapsed)
            stage.append(records[-1]["durations"].get("requirements", 0.0))
        print(f"  warm, build requirements in the index: median {statistics.median(warm):6.2f} s "
              f"(runs {' '.join(f'{t:.2f}' for t in warm)}), no extra build; "
              f"the build-requirements stage: median {statistics.median(stage):.2f} s")
        if args.baseline:
            checkout = Path(tmp) / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(checkout), args.baseline],
                           check=True, capture_output=True)
            try:
                factory_build(Path(tmp) / "baseline-warmup", checkout)  # fills its caches
                times = []
                for n in range(args.rounds):
                    work = Path(tmp) / f"baseline-{n}"
                    shutil.copytree(Path(tmp) / "baseline-warmup" / "state" / "cache", work / "state" / "cache")
                    times.append(factory_build(work, checkout)[0])
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(checkout)], check=False)
            b = statistics.median(times)
            print(f"  baseline {args.baseline} (build requirements from the upstream, network on): median {b:6.2f} s "
                  f"(runs {' '.join(f'{t:.2f}' for t in times)})")
            print(f"  overhead of hardened builds, warm: {statistics.median(warm) - b:+.2f} s "
                  f"({statistics.median(warm) / b:.2f}x)")


if __name__ == "__main__":
    main()
