"""Every miss seen, and in the queue as it happens: a project the index lacks, a version it lacks
(served per version from the upstream), a Python or platform it has no file for (real pip and uv
say which in their User-Agent)."""

import json
import subprocess
import sys
import time

import httpx
import pytest
from conftest import clean_venv, isolated_pip_env
from support.index_server import LocalIndex
from support.server import running
from support.wheels import make_wheel

from factory.index.distfile import inspect_wheel
from factory.index.publish import publish
from factory.queue.ledger import Ledger

JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """An upstream with demo-app 1.0 and 2.0 (the index has 1.0 only)."""
    root = tmp_path_factory.mktemp("every-miss-upstream")
    with LocalIndex() as index:
        for version in ("1.0", "2.0"):
            index.add_file("demo-app", make_wheel(root, "demo-app", version, body=f"upstream {version}"))
        yield index


@pytest.fixture
def index(tmp_path):
    """Ours: demo-app 1.0, and demo-new with a cp313 wheel only."""
    index = tmp_path / "index"
    publish(index, [inspect_wheel(make_wheel(tmp_path / "w", "demo-app", "1.0", body="ours")),
                    inspect_wheel(make_wheel(tmp_path / "w", "demo-new", "1.0",
                                             tag="cp313-cp313-manylinux_2_17_x86_64.manylinux_2_28_x86_64"))], "")
    return index


def ledger_has(state, project, version, timeout=60.0):
    """The ledger's item, as soon as it is there (``timeout``: only how long to wait before failing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state / "queue.sqlite3").exists():
            with Ledger(str(state / "queue.sqlite3")) as ledger:
                if (item := ledger.get(project, version)) is not None:
                    return item
        time.sleep(0.05)
    raise AssertionError(f"{project}=={version} is not in the queue after {timeout} s")


def pip(python, url, *args):
    return subprocess.run([str(python), "-m", "pip", "install", "--isolated", "--no-cache-dir", "--index-url",
                           f"{url}/simple/", *args], capture_output=True, text=True, env=isolated_pip_env())


def uv(python, url, *args):
    return subprocess.run([sys.executable, "-m", "uv", "pip", "install", "--no-config", "--no-cache", "--python",
                           str(python), "--index-url", f"{url}/simple/", *args], capture_output=True, text=True,
                          env=isolated_pip_env())


def test_a_miss_is_a_queued_request_as_it_happens(index, tmp_path, upstream):
    state = tmp_path / "state"
    with running(index, state, upstream=upstream.url) as url:
        assert httpx.get(f"{url}/simple/demo-app/").status_code == 200
        assert httpx.get(f"{url}/simple/no-such-thing/").status_code == 404
        # In the ledger while the server runs on: its sink wrote it on its own, not at shutdown, and
        # no ingest ran. How soon is the sink's interval; a stopwatch here would time the machine.
        item = ledger_has(state, "no-such-thing", "latest")
        assert (item.state, item.hits) == ("queued", 1)
    # The miss log keeps it, marked as queued: an ingest of it does not count it twice.
    (record,) = [json.loads(line) for line in (state / "misses.jsonl").read_text().splitlines()]
    assert record["project"] == "no-such-thing" and record["queued"] is True
    done = subprocess.run([sys.executable, "-m", "factory", "ingest", str(state / "misses.jsonl")],
                          capture_output=True, text=True, env={**isolated_pip_env(), "FACTORY_STATE_DIR": str(state)})
    assert done.returncode == 0 and "0 misses" in done.stdout, done.stdout + done.stderr
    with Ledger(str(state / "queue.sqlite3")) as ledger:
        assert ledger.get("no-such-thing", "latest").hits == 1


def test_a_version_the_index_lacks_comes_from_the_upstream_per_version_and_is_queued(index, tmp_path, upstream):
    state = tmp_path / "state"
    python = clean_venv(tmp_path / "venv")
    with running(index, state, upstream=upstream.url) as url:  # per project (the default): 2.0 is not there
        failed = pip(python, url, "demo-app==2.0")
        assert failed.returncode != 0 and "from versions: 1.0" in failed.stderr
    with running(index, state, "--fallback", "version", upstream=upstream.url) as url:
        page = httpx.get(f"{url}/simple/demo-app/", headers={"Accept": JSON}).json()
        files = {f["filename"]: f for f in page["files"]}
        assert files["demo_app-1.0-py3-none-any.whl"]["url"].startswith("../../files/")  # ours, never mixed
        assert files["demo_app-2.0-py3-none-any.whl"]["_factory-upstream"] is True
        assert page["versions"] == ["1.0", "2.0"]
        got = pip(python, url, "demo-app==2.0")
        assert got.returncode == 0, got.stderr
        assert ledger_has(state, "demo-app", "2.0").state == "queued"  # fetching it was a miss of 2.0
        assert uv(python, url, "--reinstall", "demo-app==2.0").returncode == 0
    value = subprocess.run([str(python), "-c", "import demo_app; print(demo_app.VALUE)"], capture_output=True, text=True)
    assert value.stdout.strip() == "upstream 2.0"


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_a_client_the_index_has_no_file_for_is_a_miss_naming_its_target(index, tmp_path, installer):
    state = tmp_path / "state"
    python = clean_venv(tmp_path / "venv")  # this host's CPython 3.11: demo-new has a cp313 wheel only
    with running(index, state, "--no-fallback") as url:
        done = (pip if installer == "pip" else uv)(python, url, "demo-new")
        assert done.returncode != 0
        item = ledger_has(state, "demo-new", "1.0")
    records = [json.loads(line) for line in (state / "misses.jsonl").read_text().splitlines()]
    (miss,) = [r for r in records if r["kind"] == "no-compatible-file"]
    assert (miss["project"], miss["version"], miss["target"]) == ("demo-new", "1.0", "cp311-x86_64")
    assert miss["tag"].startswith("cp311-cp311-manylinux_2_") and miss["installer"].startswith(installer)
    with Ledger(str(state / "queue.sqlite3")) as ledger:
        assert [(p, v, t) for p, v, t, _ in ledger.missed_targets()] == [("demo-new", "1.0", "cp311-x86_64")]
    assert item.state == "queued"
    status = subprocess.run([sys.executable, "-m", "factory", "status", "--json"], capture_output=True, text=True,
                            env={**isolated_pip_env(), "FACTORY_STATE_DIR": str(state), "FACTORY_INDEX_DIR": str(index)})
    wanted = json.loads(status.stdout)["missing_targets"]
    assert wanted[0]["target"] == "cp311-x86_64" and wanted[0]["projects"] == ["demo-new==1.0"]


def test_a_client_on_another_platform_is_a_miss_naming_its_target(index, tmp_path):
    """pip's own User-Agent, as pip on an aarch64 machine with CPython 3.13 sends it: demo-new has
    a cp313 wheel for x86_64 only, so that client finds no file and the miss names its target."""
    said = subprocess.run([sys.executable, "-W", "ignore", "-c", "from pip._internal.network.session import "
                           "user_agent; print(user_agent())"], capture_output=True, text=True, check=True)
    installer, _, facts = said.stdout.strip().partition(" ")
    data = json.loads(facts)
    data.update(cpu="aarch64", python="3.13.1", implementation={"name": "CPython", "version": "3.13.1"})
    agent = f"{installer} {json.dumps(data)}"
    state = tmp_path / "state"
    with running(index, state, "--no-fallback") as url:
        page = httpx.get(f"{url}/simple/demo-new/", headers={"User-Agent": agent, "Accept": JSON})
        assert page.status_code == 200 and len(page.json()["files"]) == 1  # the x86_64 wheel, no use to it
        item = ledger_has(state, "demo-new", "1.0")
        # And an x86_64 client on 3.13 is served: no miss for it.
        data.update(cpu="x86_64")
        assert httpx.get(f"{url}/simple/demo-new/", headers={"User-Agent": f"{installer} {json.dumps(data)}"}) \
            .status_code == 200
    records = [json.loads(line) for line in (state / "misses.jsonl").read_text().splitlines()]
    (miss,) = [r for r in records if r["kind"] == "no-compatible-file"]
    assert (miss["project"], miss["version"], miss["target"]) == ("demo-new", "1.0", "cp313-aarch64")
    assert miss["tag"].startswith("cp313-cp313-manylinux_2_") and miss["tag"].endswith("_aarch64")
    assert item.state == "queued"
