"""A build whose lease is lost stops and publishes nothing (issue 12, item 14), without a
container: the build is held in its fetch by an upstream that does not answer yet.

Decided by events, not by the test's stopwatch: the build's end is seen the moment it happens
(a pidfd), and compared with the lease's expiry as the ledger records it."""

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import assert_not_published
from support.index_server import LocalIndex

from factory.pipeline.record import load_all
from factory.queue.ledger import Ledger

LEASE = 12  # seconds; a build stops with a third left, so it has 4 s (less a poll) to end in
WAIT = 60  # seconds before a test gives up on something that should happen


@pytest.fixture
def slow(sdists):
    """An upstream whose sdist of fixture-pure is sent only once the test says so."""
    release = threading.Event()
    with LocalIndex() as index:
        index.add_file("fixture-pure", sdists["fixture-pure"], release=release)
        yield index, release
        release.set()


@pytest.fixture
def workers():
    """The workers a test starts; one left running is killed (its build dies with it)."""
    started = []
    yield started
    for worker in started:
        if worker.poll() is None:
            worker.send_signal(signal.SIGCONT)
            worker.kill()
            worker.wait()


def environment(cfg, upstream):
    return {**os.environ, "FACTORY_UPSTREAM": upstream.url, "FACTORY_INDEX_DIR": str(cfg.index_dir),
            "FACTORY_STATE_DIR": str(cfg.state_dir), "FACTORY_RECIPES_DIR": str(cfg.recipes_dir),
            "FACTORY_ARCHS": "x86_64", "FACTORY_PYTHONS": "3.11", "FACTORY_LEASE_SECONDS": str(LEASE)}


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _state(pid):
    """A process's state letter (``T``: stopped, ``Z``: a zombie while its parent is stopped),
    None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _end_of(pidfd, what):
    """Wait for the process of ``pidfd`` to end; returns when it was seen ended (epoch seconds):
    no later than a moment after it did, however slow the machine."""
    readable, _, _ = select.select([pidfd], [], [], WAIT)
    assert readable, f"timed out after {WAIT} s waiting for {what}"
    return time.time()


def _start(config, slow, tmp_path, workers):
    upstream, _ = slow
    env = environment(config, upstream)
    log = tmp_path / "misses.jsonl"
    log.write_text(json.dumps({"ts": time.time(), "kind": "file", "filename": "fixture_pure-1.0.0.tar.gz"}) + "\n")
    assert subprocess.run([sys.executable, "-m", "factory", "ingest", str(log)], env=env).returncode == 0
    worker = subprocess.Popen([sys.executable, "-m", "factory", "worker", "--once"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers.append(worker)
    _wait_for(lambda: any(r.startswith("/files/fixture_pure") for r in upstream.requests), WAIT, "the build's fetch")
    (build,) = _children(worker.pid)
    return worker, os.pidfd_open(build)  # open while it runs: it names this process, whatever follows


def test_a_build_stops_itself_when_its_stopped_worker_renews_no_lease(config, slow, tmp_path, workers):
    """A worker stopped past its lease left its build running, which finished while another
    worker built the same item."""
    worker, build = _start(config, slow, tmp_path, workers)
    worker.send_signal(signal.SIGSTOP)
    try:
        _wait_for(lambda: _state(worker.pid) == "T", WAIT, "the worker to stop")  # renewing nothing from now on
        with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:
            expires = ledger.get("fixture-pure", "1.0.0").lease_expires
        ended = _end_of(build, "the build to stop itself")
        # It stopped before the lease ran out: before any other worker could claim the item.
        assert ended < expires, f"the build ended {ended - expires:.2f} s after its lease ran out"
        with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:
            assert ledger.get("fixture-pure", "1.0.0").state == "building"
            while (left := expires - time.time()) >= 0:  # the ledger's own clock: then, and only then, it is free
                time.sleep(left + 0.01)
            other = ledger.claim("another-worker")
            assert other is not None and other.project == "fixture-pure"
    finally:
        worker.send_signal(signal.SIGCONT)
        os.close(build)
    slow[1].set()
    assert worker.wait(timeout=WAIT) == 0, worker.stderr.read() if worker.stderr else ""
    (record,) = load_all(config.records_dir, "fixture-pure")
    assert record.status == "failed" and record.reason == "interrupted before the build ended"
    assert_not_published(config, "fixture-pure")
    with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:
        item = ledger.get("fixture-pure", "1.0.0")
    assert (item.state, item.lease_owner) == ("building", "another-worker")  # the stopped worker changed nothing


def test_a_worker_that_lost_the_lease_stops_the_build(config, slow, tmp_path, workers):
    worker, build = _start(config, slow, tmp_path, workers)
    with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:  # another worker took it (the lease ran out)
        ledger.conn.execute("UPDATE requests SET lease_expires = 0")
        assert ledger.claim("another-worker") is not None
    _end_of(build, "the worker to stop the build")
    os.close(build)
    slow[1].set()
    assert worker.wait(timeout=WAIT) == 0
    assert_not_published(config, "fixture-pure")
    with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:
        assert ledger.get("fixture-pure", "1.0.0").lease_owner == "another-worker"
