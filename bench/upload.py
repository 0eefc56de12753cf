"""How long does `factory upload` take? N hand-made wheels (in projects of K versions each) from
a factory index into a hosted stage of a real devpi-server on 127.0.0.1: the first run, which
uploads them all, and a second run, which must upload nothing (it asks the stage's pages and
finds every file there).

    .venv/bin/python bench/upload.py [--wheels 1000] [--per-project 4] [--jobs 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT  # noqa: F401  (puts tests/ on the path)
from support.devpi import ROOT_PASSWORD, Devpi
from support.wheels import make_wheel

from factory.index.distfile import inspect_wheel
from factory.index.publish import publish
from factory.upload.credentials import Credentials
from factory.upload.run import Result, upload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=int, default=1000)
    parser.add_argument("--per-project", type=int, default=4, help="versions per project")
    parser.add_argument("--jobs", type=int, default=4, help="uploads at a time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="factory-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        wheels = [make_wheel(root / "w", f"bench-up-{n // args.per_project}", f"1.{n % args.per_project}", body=str(n))
                  for n in range(args.wheels)]
        publish(root / "index", [inspect_wheel(w) for w in wheels], "")
        print(f"{args.wheels} wheels in {args.wheels // args.per_project} projects made and published in "
              f"{time.perf_counter() - started:.1f} s")
        with Devpi(root / "devpi") as devpi:
            devpi.client("index", "-c", "root/hosted", "bases=", "volatile=False")
            target = f"{devpi.url}/root/hosted/"
            login = Credentials("root", ROOT_PASSWORD, "bench")
            runs = []
            for label in ("first run", "second run"):
                started = time.perf_counter()
                report = upload(root / "index", root / "state", target, credentials=login, jobs=args.jobs)
                elapsed = time.perf_counter() - started
                runs.append(report)
                print(f"{label}: {elapsed:.1f} s ({args.wheels / elapsed:.0f} files/s); {report.summary}")
            first, second = runs
            if first.count(Result.UPLOADED) != args.wheels or not first.ok:
                sys.exit(f"the first run should upload {args.wheels} wheels: {first.summary}")
            if second.count(Result.UPLOADED) != 0 or second.count(Result.PRESENT) != args.wheels:
                sys.exit(f"the second run should upload nothing: {second.summary}")


if __name__ == "__main__":
    main()
