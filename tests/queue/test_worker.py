"""Workers with real builds: a miss log becomes published wheels; a worker killed mid-build
loses nothing; a stopped worker gives its item back."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import assert_not_published, clean_venv, pip_install

from factory.index.manifest import Manifest
from factory.pipeline.record import load_all
from factory.queue.ledger import Ledger

pytestmark = pytest.mark.container


@pytest.fixture(autouse=True)
def _image(builder_image):
    """Every test here needs the x86_64 builder image."""


def environment(cfg, **extra):
    return {**os.environ, "FACTORY_UPSTREAM": cfg.upstream, "FACTORY_INDEX_DIR": str(cfg.index_dir),
            "FACTORY_STATE_DIR": str(cfg.state_dir), "FACTORY_RECIPES_DIR": str(cfg.recipes_dir),
            "FACTORY_ARCHS": "x86_64", "FACTORY_PYTHONS": "3.11", **extra}


def factory(env, *args, **kwargs):
    return subprocess.run([sys.executable, "-m", "factory", *args], capture_output=True, text=True, env=env, **kwargs)


def ingest(env, tmp_path, *records):
    log = tmp_path / "misses.jsonl"
    log.write_text("".join(json.dumps({"ts": time.time(), "status": 404, "user_agent": "pip/26", **r}) + "\n"
                           for r in records))
    done = factory(env, "ingest", str(log))
    assert done.returncode == 0, done.stderr


def test_a_miss_log_becomes_built_published_wheels(config, tmp_path):
    env = environment(config)
    ingest(env, tmp_path,
           {"kind": "project", "project": "Fixture.Pure"},
           {"kind": "file", "filename": "fixture_cext-1.0.0-cp311-cp311-manylinux_2_28_x86_64.whl"},
           {"kind": "metadata", "filename": "fixture_cext-1.0.0-cp311-cp311-manylinux_2_28_x86_64.whl.metadata"},
           {"kind": "project", "project": "fixture-wheelonly"},
           {"kind": "file", "filename": "fixture_badhash-1.0.0.tar.gz"},
           {"kind": "project", "project": "pip"})
    worker = factory(env, "worker", "-j", "2")
    assert worker.returncode == 0, worker.stderr
    assert "built fixture-pure -> 1.0.0" in worker.stdout + worker.stderr
    status = json.loads(factory(env, "status", "--json").stdout)
    assert status["counts"] == {"queued": 0, "building": 0, "built": 2, "failed": 0, "refused": 2, "waiting": 0}
    assert status["failure_classes"] == {"no-source": 1, "hash-mismatch": 1}
    python = clean_venv(tmp_path / "venv")
    assert pip_install(python, config.index_dir, "fixture-pure", "fixture-cext").returncode == 0
    # A second run finds nothing to do.
    again = factory(env, "worker")
    assert again.returncode == 0 and "nothing to do" in again.stderr


def _wait_for(condition, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _wait_until(epoch):
    """Sleep until the wall clock (the one the ledger's leases are on) is past ``epoch``."""
    while (left := epoch - time.time()) >= 0:
        time.sleep(left + 0.01)


def _building(cfg):
    return list((cfg.state_dir / "work").glob("*/build-*.log"))


def test_a_worker_killed_mid_build_loses_nothing(config, tmp_path):
    env = environment(config, FACTORY_LEASE_SECONDS="6")
    ingest(env, tmp_path, {"kind": "file", "filename": "fixture_cpp-1.0.0.tar.gz"})
    worker = subprocess.Popen([sys.executable, "-m", "factory", "worker", "--once"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: _building(config), what="the build to start")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:
        leased = ledger.get("fixture-cpp", "1.0.0")
    assert leased.state == "building"  # leased to a dead worker
    _wait_until(leased.lease_expires)  # the lease runs out: when the ledger says, not after a guess
    done = factory(env, "worker")
    assert done.returncode == 0, done.stderr
    with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:
        item = ledger.get("fixture-cpp", "1.0.0")
    assert (item.state, item.attempts) == ("built", 2)
    with Manifest(config.index_dir / "manifest.sqlite3") as manifest:
        files = [e.filename for e in manifest.files("fixture-cpp")]
    assert len(files) == 2 and "fixture_cpp-1.0.0.tar.gz" in files  # one wheel and its sdist, published once
    assert [r.status for r in load_all(config.records_dir, "fixture-cpp")] == ["built"]


def test_sigterm_stops_the_build_and_gives_the_item_back(config, tmp_path):
    env = environment(config)
    ingest(env, tmp_path, {"kind": "file", "filename": "fixture_cext-1.0.0.tar.gz"})
    worker = subprocess.Popen([sys.executable, "-m", "factory", "worker"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _building(config), what="the build to start")
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    assert "1 released" in stderr
    with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:
        item = ledger.get("fixture-cext", "1.0.0")
    assert (item.state, item.attempts, item.lease_owner) == ("queued", 0, None)
    (record,) = load_all(config.records_dir, "fixture-cext")
    assert record.reason == "interrupted before the build ended"
    leftovers = subprocess.run(["podman", "ps", "--all", "--quiet", "--filter", f"label=factory.build={record.id}"],
                               capture_output=True, text=True).stdout.split()
    assert leftovers == []
    assert_not_published(config, "fixture-cext")
