"""Real installers against the index: pip and uv, over file:// and over HTTP from `factory serve`."""

import datetime
import os
import shutil
import subprocess
import sys

import pytest
from conftest import clean_venv, isolated_pip_env
from support.server import running
from support.wheels import make_wheel

from factory.index.check import check
from factory.index.distfile import inspect_wheel
from factory.index.publish import publish, yank

UV = shutil.which("uv", path=os.path.dirname(sys.executable))


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """demo 1.0 and 2.0 (yanked), and other 1.0."""
    root = tmp_path_factory.mktemp("clients")
    index = root / "index"
    base = index.resolve().as_uri() + "/"
    publish(index, [inspect_wheel(make_wheel(root / "w", "demo", v, body=v)) for v in ("1.0", "2.0")], base)
    publish(index, [inspect_wheel(make_wheel(root / "w", "other", "1.0", body="other"))], base)
    yank(index, "demo", "2.0", "broken", base)
    report = check(index, base)  # read with a strict client first
    assert report.ok, report.problems
    return index


@pytest.fixture(scope="module")
def server(index, tmp_path_factory):
    with running(index, tmp_path_factory.mktemp("serve-state"), "--no-fallback") as url:
        yield url + "/simple/"


def pip(python, index_url, *args):
    return subprocess.run([str(python), "-m", "pip", "install", "--isolated", "--no-cache-dir", "--index-url", index_url,
                           *args], capture_output=True, text=True, env=isolated_pip_env())


def uv(python, index_url, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env["UV_NO_CONFIG"] = "1"
    return subprocess.run([UV, "pip", "install", "--python", str(python), "--no-cache", "--index-url", index_url, *args],
                          capture_output=True, text=True, env=env)


def value(python, module="demo"):
    return subprocess.run([str(python), "-c", f"import {module}; print({module}.VALUE)"], capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def venv(tmp_path):
    return clean_venv(tmp_path / "venv")


@pytest.mark.parametrize("installer", [pip, uv])
@pytest.mark.parametrize("over", ["file", "http"])
def test_installs_skip_the_yanked_release_unless_pinned(installer, over, index, server, venv):
    url = (index / "simple").as_uri() + "/" if over == "file" else server
    done = installer(venv, url, "demo", "other")
    assert done.returncode == 0, done.stderr
    assert value(venv) == "1.0" and value(venv, "other") == "other"
    pinned = installer(venv, url, "--force-reinstall" if installer is pip else "--reinstall", "demo==2.0")
    assert pinned.returncode == 0, pinned.stderr
    assert value(venv) == "2.0"
    assert "yanked" in (pinned.stdout + pinned.stderr).lower()


def test_pip_reads_the_metadata_sidecar_over_http(server, venv):
    done = pip(venv, server, "-v", "demo")
    assert done.returncode == 0, done.stderr
    assert "demo-1.0-py3-none-any.whl.metadata" in done.stdout


def test_uv_exclude_newer_works_from_the_json_upload_times(server, venv):
    before = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    after = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    too_early = uv(venv, server, "--exclude-newer", before, "demo")
    assert too_early.returncode != 0
    assert uv(venv, server, "--exclude-newer", after, "demo").returncode == 0


@pytest.fixture
def corrupted(tmp_path, index):
    """A copy of the index whose demo 1.0 wheel, or its metadata sidecar, has other bytes."""
    def make(what):
        copy = tmp_path / f"index-{what}"
        shutil.copytree(index, copy, symlinks=True)
        (wheel,) = copy.glob("files/*/*/*/demo-1.0-py3-none-any.whl")
        if what == "file":  # another valid wheel of the same name: only the hash can tell
            wheel.write_bytes(make_wheel(tmp_path / "evil", "demo", "1.0", body="evil").read_bytes())
        else:
            sidecar = wheel.with_name(wheel.name + ".metadata")
            sidecar.write_bytes(sidecar.read_bytes() + b"Summary: tampered\n")
        return copy
    return make


@pytest.mark.parametrize("installer", [pip, uv])
@pytest.mark.parametrize("what", ["file", "metadata"])
def test_a_corrupted_file_or_metadata_is_refused(installer, what, corrupted, venv, tmp_path):
    copy = corrupted(what)
    with running(copy, tmp_path / "state", "--no-fallback") as url:
        done = installer(venv, url + "/simple/", "demo==1.0")
    assert done.returncode != 0, done.stdout
    assert "hash" in (done.stdout + done.stderr).lower()
    assert value(venv) == ""
