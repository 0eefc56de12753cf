"""How many claims a second can the ledger hand out? One run: 1 and 8 worker processes
claiming (and finishing) items from one queue, on SQLite and on PostgreSQL.

    .venv/bin/python bench/claims.py [--items N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from factory.pipeline.record import BuildStatus
from factory.queue.ledger import Demand, Ledger  # noqa: E402

POSTGRES = os.environ.get("FACTORY_TEST_POSTGRES", "postgresql://factory:factory@127.0.0.1:5432/factory_test")


def _drain(url: str, worker: str, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue) -> None:
    n = 0
    with Ledger(url) as ledger:
        start.wait()
        while (item := ledger.claim(worker)) is not None:
            ledger.finish(item, worker, BuildStatus.BUILT)
            n += 1
    out.put(n)


def run(url: str, items: int, workers: int) -> float:
    with Ledger(url) as ledger:
        ledger.add([Demand(f"p{i}", "latest", i % 13 + 1, frozenset({"c"}), time.time(), time.time())
                    for i in range(items)])
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_drain, args=(url, f"w{n}", start, out)) for n in range(workers)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # every process connected
    began = time.perf_counter()
    start.set()
    done = sum(out.get() for _ in procs)
    elapsed = time.perf_counter() - began
    for p in procs:
        p.join()
    assert done == items, (done, items)
    return items / elapsed


def postgres_schema(server: str) -> tuple[str, str]:
    import psycopg

    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{server}?options=-csearch_path%3D{schema}", schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    import psycopg

    print(f"claim + finish of {args.items} items (claims per second)")
    with tempfile.TemporaryDirectory(prefix="factory-bench-") as tmp:
        for workers in (1, 8):
            rate = run(str(Path(tmp) / f"q{workers}.sqlite3"), args.items, workers)
            print(f"  sqlite      {workers} worker{'s' if workers > 1 else ' '}: {rate:8.0f}/s")
    for workers in (1, 8):
        url, schema = postgres_schema(args.postgres)
        try:
            rate = run(url, args.items, workers)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
        print(f"  postgresql  {workers} worker{'s' if workers > 1 else ' '}: {rate:8.0f}/s")


if __name__ == "__main__":
    main()
