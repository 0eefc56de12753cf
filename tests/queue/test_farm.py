"""`factory farm`: a miss becomes a build with no person in between; a worker that dies is
started again; SIGTERM stops everything and gives leased items back."""

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from conftest import clean_venv, isolated_pip_env
from support.server import free_port
from support.upload_target import UploadTarget

from factory.index.manifest import published_files
from factory.queue.ledger import Ledger

pytestmark = pytest.mark.container


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pip(python, url, *args):
    return subprocess.run([str(python), "-m", "pip", "install", "--isolated", "--no-cache-dir", "--index-url",
                           f"{url}/simple/", *args], capture_output=True, text=True, env=isolated_pip_env())


def test_a_miss_at_the_server_becomes_our_signed_wheel(config, builder_image, tmp_path):
    with UploadTarget(credentials=("ci", "s3cret")) as repository:
        _a_miss_becomes_our_signed_wheel(config, tmp_path, repository)


def _a_miss_becomes_our_signed_wheel(config, tmp_path, repository):
    port = free_port()
    env = {**os.environ, "FACTORY_UPSTREAM": config.upstream, "FACTORY_INDEX_DIR": str(config.index_dir),
           "FACTORY_STATE_DIR": str(config.state_dir), "FACTORY_RECIPES_DIR": str(config.recipes_dir),
           "FACTORY_ARCHS": "x86_64", "FACTORY_PYTHONS": "3.11", "FACTORY_LEASE_SECONDS": "60",
           # upload-to: what the farm publishes goes to a hosted repository too
           "FACTORY_UPLOAD_TO": repository.url, "FACTORY_UPLOAD_USERNAME": "ci", "FACTORY_UPLOAD_PASSWORD": "s3cret",
           "FACTORY_UPLOAD_SIMPLE_URL": repository.simple_url}
    farm = subprocess.Popen([sys.executable, "-m", "factory", "farm", "-w", "1", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), 60, "the farm's server")
        # Not in the index: pip gets it from the upstream, and the miss is queued as it happens.
        first = clean_venv(tmp_path / "first")
        got = pip(first, url, "fixture-pure")
        assert got.returncode == 0, got.stderr
        wait_for(lambda: published_files(config.index_dir, "fixture-pure", "1.0.0"), 240, "the farm to build it")
        # A clean venv now gets factory's own, signed wheel.
        second = clean_venv(tmp_path / "second")
        assert pip(second, url, "fixture-pure").returncode == 0
        verified = subprocess.run([sys.executable, "-m", "factory", "verify", "--env", str(second.parent.parent),
                                   "--json"], capture_output=True, text=True, env=env)
        found = {d["name"]: d for d in json.loads(verified.stdout)["distributions"]}
        assert found["fixture-pure"]["ours"] and found["fixture-pure"]["signature"] == "verified", verified.stdout
        assert "fixture-pure" in httpx.get(f"{url}/status/").text  # the status site knows
        # ... and the hosted repository got what was published, byte for byte.
        published = published_files(config.index_dir, "fixture-pure", "1.0.0")
        wait_for(lambda: set(published) <= set(repository.files), 60, "the upload after publishing")
        for name in published:
            (path,) = config.index_dir.rglob(name)
            assert repository.files[name] == path.read_bytes()

        # A worker that dies is started again.
        children = json.loads((config.state_dir / "farm.json").read_text())
        worker = children["worker-1"]["pid"]
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: json.loads((config.state_dir / "farm.json").read_text())["worker-1"]["restarts"] == 1, 60,
                 "the worker to be started again")
        restarted = json.loads((config.state_dir / "farm.json").read_text())
        assert restarted["worker-1"]["pid"] != worker and pid_alive(restarted["worker-1"]["pid"])

        # SIGTERM while a build runs: everything stops, and the item goes back to the queue.
        assert httpx.get(f"{url}/files/aa/bb/x/fixture_cext-1.0.0.tar.gz").status_code == 404  # a miss: queued
        wait_for(lambda: list((config.state_dir / "work").glob("*/build-*.log")), 120, "the next build to start")
        farm.send_signal(signal.SIGTERM)
        assert farm.wait(timeout=120) == 0
    finally:
        if farm.poll() is None:
            farm.kill()
        print(farm.communicate()[1][-20000:])  # what the farm said: shown when the test fails
    final = json.loads((config.state_dir / "farm.json").read_text())
    assert not any(pid_alive(child["pid"]) for child in final.values() if child["pid"])
    with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:
        item = ledger.get("fixture-cext", "1.0.0")
    assert (item.state, item.lease_owner) == ("queued", None)


def _answers(url):
    try:
        return httpx.get(url + "/simple/", timeout=1).status_code in (200, 404)
    except httpx.TransportError:
        return False
