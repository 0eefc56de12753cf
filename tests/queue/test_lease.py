"""A build whose lease is lost stops and publishes nothing (issue 12, item 14), without a
container: the build is held in its fetch by an upstream that does not answer yet."""

import json
import os
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

LEASE = 6


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


def _ended(pid):
    """Whether a process has exited (a zombie while its parent is stopped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _start(config, slow, tmp_path, workers):
    upstream, _ = slow
    env = environment(config, upstream)
    log = tmp_path / "misses.jsonl"
    log.write_text(json.dumps({"ts": time.time(), "kind": "file", "filename": "fixture_pure-1.0.0.tar.gz"}) + "\n")
    assert subprocess.run([sys.executable, "-m", "factory", "ingest", str(log)], env=env).returncode == 0
    worker = subprocess.Popen([sys.executable, "-m", "factory", "worker", "--once"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers.append(worker)
    _wait_for(lambda: any(r.startswith("/files/fixture_pure") for r in upstream.requests), 60, "the build's fetch")
    (build,) = _children(worker.pid)
    return worker, build


def test_a_build_stops_itself_when_its_stopped_worker_renews_no_lease(config, slow, tmp_path, workers):
    """A worker stopped past its lease left its build running, which finished while another
    worker built the same item."""
    worker, build = _start(config, slow, tmp_path, workers)
    worker.send_signal(signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        _wait_for(lambda: _ended(build), 3 * LEASE, "the build to stop itself")
        # It stopped before the lease ran out: before any other worker could claim the item.
        assert time.monotonic() - stopped_at < LEASE
        with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:
            assert ledger.get("fixture-pure", "1.0.0").state == "building"
            time.sleep(LEASE)
            other = ledger.claim("another-worker")
            assert other is not None and other.project == "fixture-pure"
    finally:
        worker.send_signal(signal.SIGCONT)
    slow[1].set()
    assert worker.wait(timeout=60) == 0, worker.stderr.read() if worker.stderr else ""
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
    _wait_for(lambda: _ended(build), 3 * LEASE, "the worker to stop the build")
    slow[1].set()
    assert worker.wait(timeout=60) == 0
    assert_not_published(config, "fixture-pure")
    with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:
        assert ledger.get("fixture-pure", "1.0.0").lease_owner == "another-worker"
