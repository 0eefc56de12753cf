"""The loop, timed: from a miss at the server to a published wheel through `factory farm`, and
what putting each miss into the queue costs the server.

1. A pure fixture project (cp311-x86_64) the index lacks, in an index that has its build
   requirements already (a first build filled it): a farm with one worker is started, a client
   asks the server for the project, and the seconds until the server's page offers our wheel are
   split into queueing (the miss, to its row in the queue), claim (the row, to a worker's lease),
   build (the lease, to the start of publishing: process start, resolve, fetch, build, repair,
   sign) and publish (the build record's publish stage). A fresh farm for each round.
2. `factory serve` under a loopback load of misses (16 clients, pages the index lacks, no
   fallback) with each miss put into the queue (the default) and with `--no-queue` (the JSON
   log only); then of hits, for scale: requests per second.

    .venv/bin/python bench/farm.py [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import ROOT, fixture_index, load, signing, time_factory_build, warm_copy

from factory.queue.ledger import Item, Ledger

sys.path.insert(0, str(ROOT / "tests"))
from support.server import free_port, running  # noqa: E402

PROJECT = "fixture-pure"
ONE_TARGET = {"FACTORY_ARCHS": "x86_64", "FACTORY_PYTHONS": "3.11"}
JSON = "application/vnd.pypi.simple.v1+json"
PIP_UA = 'pip/25.3 {"implementation":{"name":"CPython","version":"3.11.2"},"cpu":"x86_64"}'


def one_round(upstream: str, work: Path) -> dict[str, float]:
    """Start a farm on ``work``, send one miss, and time it until the wheel is served."""
    port = free_port()
    env = {**os.environ, **ONE_TARGET, "FACTORY_UPSTREAM": upstream, "FACTORY_INDEX_DIR": str(work / "index"),
           "FACTORY_STATE_DIR": str(work / "state"), "FACTORY_RECIPES_DIR": str(ROOT / "recipes")}
    farm = subprocess.Popen([sys.executable, "-m", "factory", "farm", "-w", "1", "--poll", "0.2", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    page = f"{url}/simple/{PROJECT}/"
    try:
        _until(lambda: _status(url + "/simple/") is not None, 30, "the farm's server")
        time.sleep(2)  # the workers are up and polling: the round times the loop, not the farm's start
        missed = time.time()
        assert httpx.get(page, headers={"Accept": JSON, "User-Agent": PIP_UA}).status_code == 200  # from upstream
        seen: dict[str, float] = {}
        ledger_path = str(work / "state" / "queue.sqlite3")

        def served() -> bool:
            if "queued" not in seen or "building" not in seen:
                item = _item(ledger_path)
                if item is not None and item.state.value in ("queued", "building"):
                    seen.setdefault(item.state.value, item.updated)  # when the row was written, by its writer
            files = httpx.get(page, headers={"Accept": JSON}).json()["files"]
            if any(f["filename"].endswith(".whl") for f in files):
                seen["served"] = time.time()
                return True
            return False

        _until(served, 600, "the farm to publish the wheel")
        _until(lambda: _item(ledger_path).state.value == "built", 60, "the worker to record the build")
        record = json.loads(Path(_item(ledger_path).record).read_text())
    finally:
        farm.send_signal(signal.SIGTERM)
        try:
            farm.wait(timeout=120)
        except subprocess.TimeoutExpired:
            farm.kill()
    publish = record["durations"].get("publish", 0.0)
    queued, claimed = seen.get("queued", seen.get("building")), seen["building"]
    return {"queueing": queued - missed, "claim": claimed - queued, "build": seen["served"] - claimed - publish,
            "publish": publish, "total": seen["served"] - missed}


def _item(ledger_path: str) -> Item | None:
    if not Path(ledger_path).exists():
        return None
    with Ledger(ledger_path) as ledger:
        return next((i for i in ledger.all() if i.project == PROJECT), None)


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.TransportError:
        return None


def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    sys.exit(f"timed out after {timeout:.0f} s waiting for {what}")


def serve_load(work: Path, seconds: float) -> None:
    """Requests per second of misses, queued and not, and of hits."""
    from support.wheels import make_wheel

    from factory.index.distfile import inspect_wheel
    from factory.index.publish import publish

    index = work / "load-index"
    publish(index, [inspect_wheel(make_wheel(work / "load-wheels", f"hit-{n}", "1.0")) for n in range(50)], "")
    misses = [f"/simple/missing-{n}/" for n in range(2000)]
    hits = [f"/simple/hit-{n}/" for n in range(50)]
    print(f"factory serve, {seconds:.0f} s each, 16 concurrent loopback clients (pip's User-Agent):")
    for label, paths, expect, args in [("misses, each into the queue", misses, 404, ()),
                                       ("misses, JSON log only (--no-queue)", misses, 404, ("--no-queue",)),
                                       ("hits", hits, 200, ())]:
        state = work / f"serve-{len(args)}-{expect}"
        with running(index, state, "--fallback", "none", *args) as url:
            ok, errors = asyncio.run(load(url, paths, seconds, expect=expect, user_agent=PIP_UA))
        queued = ""
        if (state / "queue.sqlite3").exists():
            with Ledger(str(state / "queue.sqlite3")) as ledger:
                n = len(ledger.all())
            queued = f", {n} requests in the queue"
        print(f"  {label:38} {ok / seconds:7.0f} requests/s, {errors} errors{queued}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="factory-bench-") as tmp, signing(Path(tmp) / "sigstore"):
        work = Path(tmp)
        (work / "sdists").mkdir()
        index, _ = fixture_index(PROJECT, work / "sdists")
        with index:
            time_factory_build(index.url, work / "seed", f"{PROJECT}==1.0.0", **ONE_TARGET)  # the build requirements
            rounds = []
            for n in range(args.rounds):
                warm_copy(work / "seed", work / f"round-{n}", PROJECT)
                rounds.append(one_round(index.url, work / f"round-{n}"))
        print(f"a miss to a published wheel through factory farm ({PROJECT}, cp311-x86_64, 1 worker polling every "
              f"0.2 s), median of {args.rounds}:")
        for part in ("queueing", "claim", "build", "publish", "total"):
            values = [r[part] for r in rounds]
            print(f"  {part:9} {statistics.median(values):7.2f} s  (min {min(values):.2f}, max {max(values):.2f})")
        serve_load(work, args.seconds)


if __name__ == "__main__":
    main()
