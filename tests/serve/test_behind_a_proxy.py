"""`factory serve` behind a proxy or a repository manager: the access log, what managers cache
by, the client a trusted proxy speaks for; and token names given with their prefix."""

import json
import subprocess
import sys

import httpx
import pytest
from support.server import running
from support.wheels import make_wheel

from factory.index.distfile import inspect_wheel
from factory.index.publish import publish
from factory.serve.auth import TOKEN_USER, Users
from factory.serve.proxy import BadProxy, forwarded_client, networks

PIP_AGENT = 'pip/25.0 {"implementation":{"name":"CPython","version":"3.12.1"},"cpu":"aarch64"}'


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("proxy")
    publish(root / "index", [inspect_wheel(make_wheel(root / "w", "demo", "1.0"))], "")
    return root / "index"


def misses(state):
    return [json.loads(line) for line in (state / "misses.jsonl").read_text().splitlines()]


def test_access_log_prints_a_line_per_request(index, tmp_path):
    log = tmp_path / "stdout"
    with running(index, tmp_path / "state", "--no-fallback", "--access-log", stdout=log) as url:
        assert httpx.get(f"{url}/simple/demo/").status_code == 200
        assert httpx.get(f"{url}/simple/nothing-here/").status_code == 404
    lines = log.read_text().splitlines()
    assert any('"GET /simple/demo/ HTTP/1.1" 200' in line for line in lines), lines
    assert any('"GET /simple/nothing-here/ HTTP/1.1" 404' in line for line in lines), lines


def test_without_access_log_nothing_is_printed(index, tmp_path):
    log = tmp_path / "stdout"
    with running(index, tmp_path / "state", "--no-fallback", stdout=log) as url:
        assert httpx.get(f"{url}/simple/demo/").status_code == 200
    assert "GET /simple/demo/" not in log.read_text()


def test_a_trusted_proxy_names_the_client_and_its_user_agent(index, tmp_path):
    state = tmp_path / "state"
    forwarded = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7", "X-Forwarded-User-Agent": PIP_AGENT,
                 "User-Agent": "devpi-server/6.20.3"}
    log = tmp_path / "stdout"
    with running(index, state, "--no-fallback", "--access-log", "--trusted-proxy", "127.0.0.0/8",
                 stdout=log) as url:
        assert httpx.get(f"{url}/simple/wanted/", headers=forwarded).status_code == 404
    (miss,) = misses(state)
    # The rightmost untrusted hop is the client: the ones left of it could be made up.
    assert miss["client"] == "198.51.100.7" and miss["user_agent"] == PIP_AGENT
    assert miss["python"] == "CPython 3.12.1" and miss["cpu"] == "aarch64"
    assert "198.51.100.7" in log.read_text()


def test_an_untrusted_peer_cannot_say_where_it_comes_from(index, tmp_path):
    state = tmp_path / "state"
    with running(index, state, "--no-fallback", "--trusted-proxy", "10.1.2.3") as url:
        httpx.get(f"{url}/simple/wanted/", headers={"X-Forwarded-For": "203.0.113.9",
                                                    "X-Forwarded-User-Agent": PIP_AGENT, "User-Agent": "curl/8"})
    (miss,) = misses(state)
    assert miss["client"] == "127.0.0.1" and miss["user_agent"] == "curl/8"


def test_forwarded_client_and_bad_proxies():
    trusted = networks(["10.0.0.0/8", "::1"])
    assert forwarded_client("10.0.0.5", "1.2.3.4, 10.9.9.9", trusted) == "1.2.3.4"
    assert forwarded_client("10.0.0.5", "", trusted) == "10.0.0.5"
    assert forwarded_client("192.0.2.1", "1.2.3.4", trusted) == "192.0.2.1"  # not a trusted peer
    with pytest.raises(BadProxy, match="'proxy.example' is not an IP address"):
        networks(["proxy.example"])
    bad = subprocess.run([sys.executable, "-m", "factory", "serve", "--trusted-proxy", "nonsense"],
                         capture_output=True, text=True, env={"FACTORY_UPSTREAM": "http://127.0.0.1:9/", "PATH": "/usr/bin"})
    assert bad.returncode == 2 and "'nonsense' is not an IP address" in bad.stderr


def test_fallback_pages_carry_an_etag_managers_can_revalidate(index, tmp_path, local_index):
    with running(index, tmp_path / "state", upstream=local_index.url) as url:
        page = httpx.get(f"{url}/simple/fixture-pure/")
        assert page.status_code == 200 and page.headers["etag"]
        again = httpx.get(f"{url}/simple/fixture-pure/", headers={"If-None-Match": page.headers["etag"]})
        assert again.status_code == 304
        ours = httpx.get(f"{url}/simple/demo/")
        assert ours.headers["etag"] and ours.headers["last-modified"]
        link = httpx.URL(f"{url}/simple/demo/").join(ours.text.split('href="')[1].split("#")[0])
        wheel = httpx.get(link)
        assert wheel.headers["etag"] and wheel.headers["last-modified"]
        assert httpx.get(link, headers={"If-None-Match": wheel.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("given", ["ci", f"{TOKEN_USER}ci"])
def test_a_token_name_is_prefixed_once(tmp_path, given):
    users = tmp_path / "users"
    done = subprocess.run([sys.executable, "-m", "factory", "users", "add", str(users), given, "--token"],
                          input="tok-123\n", capture_output=True, text=True,
                          env={"FACTORY_UPSTREAM": "http://127.0.0.1:9/", "PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr
    names = [line.split(":", 1)[0] for line in users.read_text().splitlines()]
    assert names == [f"{TOKEN_USER}ci"]
    assert "token for ci" in done.stdout
    assert Users(users).authorize("Bearer tok-123")
