"""`factory verify --index URL` (issue 13): a user with no copy of the index checks wheels, an
installed environment, and build inputs against the index as served, behind its auth. The
wheels are made by hand and signed for real; the index is served by `factory serve --users`."""

import json
import os
import subprocess
import sys

import pytest
from conftest import isolated_pip_env
from support.server import running
from support.signing import signed
from support.wheels import make_wheel

from factory.index.distfile import inspect_wheel
from factory.index.publish import publish
from factory.serve.auth import add_user


@pytest.fixture(scope="module")
def served(tmp_path_factory, sigstore_stack, local_index):
    """demo 1.0 and 2.0, signed; 2.0's bundle gone from beside it, so only its PEP 740
    provenance carries its signature. Served behind a login."""
    from conftest import _config

    root = tmp_path_factory.mktemp("remote")
    config = _config(local_index, root, sigstore_stack)
    wheels = [inspect_wheel(make_wheel(root / "w", "demo", v, body=f"ours {v}")) for v in ("1.0", "2.0")]
    publish(config.index_dir, signed(config, wheels), "")
    (bundle,) = config.index_dir.rglob("demo-2.0-*.whl.sigstore.json")
    bundle.unlink()
    users = root / "users"
    add_user(users, "alice", "s3cret")
    with running(config.index_dir, root / "serve-state", "--users", str(users), "--fallback", "none",
                 auth=("alice", "s3cret")) as url:
        yield config, url, root


def factory(config, *args, env=None):
    """Run factory as a user without the index: its index-dir is an empty directory."""
    environ = {**os.environ, "FACTORY_INDEX_DIR": str(config.state_dir / "no-index"),
               "FACTORY_STATE_DIR": str(config.state_dir), "FACTORY_UPSTREAM": config.upstream, **(env or {})}
    return subprocess.run([sys.executable, "-m", "factory", *args], capture_output=True, text=True, env=environ)


def index_url(url, login="alice:s3cret"):
    host = url.removeprefix("http://")
    return f"http://{login}@{host}/simple/" if login else f"http://{host}/simple/"


def test_wheels_are_checked_against_the_served_index(served):
    config, url, root = served
    (one,) = config.index_dir.rglob("demo-1.0-*.whl")
    (two,) = config.index_dir.rglob("demo-2.0-*.whl")
    stranger = make_wheel(root / "stranger", "demo", "1.0", body="not ours")
    done = factory(config, "verify", "--index", index_url(url), "--json", str(one), str(two), str(stranger))
    assert done.returncode == 0, done.stderr
    found = {(d["version"], d["location"]): d for d in json.loads(done.stdout)["distributions"]}
    assert found["1.0", str(one)]["ours"] and found["1.0", str(one)]["signature"] == "verified"
    # No bundle beside it: the attestation in its PEP 740 provenance is verified instead.
    assert found["2.0", str(two)]["ours"] and found["2.0", str(two)]["signature"] == "verified"
    assert not found["1.0", str(stranger)]["ours"]
    # Without the index, the same wheels are not known at all: the answer did come from the server.
    alone = factory(config, "verify", str(one))
    assert alone.returncode != 0 and "no index here" in alone.stderr


def test_an_installed_environment_is_checked_against_the_served_index(served, tmp_path):
    config, url, _ = served
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install",
                           "--isolated", "--no-cache-dir", "--index-url", index_url(url), "demo==1.0"],
                          capture_output=True, text=True, env=isolated_pip_env())
    assert done.returncode == 0, done.stderr
    done = factory(config, "verify", "--index", index_url(url), "--env", str(env), "--json", "--require-all")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["summary"] == "1 of 1 distributions came from the hardened index; 1 with a verified signature"
    # Changed after install: a failure, found through the served index as through a local one.
    (module,) = env.glob("lib/python3*/site-packages/demo/__init__.py")
    module.write_text(module.read_text() + "import os\n")
    done = factory(config, "verify", "--index", index_url(url), "--env", str(env), "--json")
    assert done.returncode == 1
    (demo,) = json.loads(done.stdout)["distributions"]
    assert demo["changed"] and "demo/__init__.py" in demo["changed"][0]


def test_deep_walks_the_served_provenance(served):
    config, url, _ = served
    (one,) = config.index_dir.rglob("demo-1.0-*.whl")
    done = factory(config, "verify", "--deep", "--index", index_url(url), str(one))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trusted all the way down" in done.stdout


def test_credentials_from_netrc(served, tmp_path):
    config, url, _ = served
    (one,) = config.index_dir.rglob("demo-1.0-*.whl")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    done = factory(config, "verify", "--index", index_url(url, login=None), "--json", str(one),
                   env={"NETRC": str(netrc)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["distributions"][0]["signature"] == "verified"


@pytest.mark.parametrize("login", ["alice:wrong", None])
def test_refused_credentials_are_a_clear_error(served, login, tmp_path):
    config, url, _ = served
    (one,) = config.index_dir.rglob("demo-1.0-*.whl")
    done = factory(config, "verify", "--index", index_url(url, login), str(one), env={"NETRC": str(tmp_path / "none")})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refused the credentials (401)" in done.stderr and "~/.netrc" in done.stderr
    assert "s3cret" not in done.stderr and "wrong" not in done.stderr.split("refused")[0]
