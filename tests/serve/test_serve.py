"""`factory serve`: negotiation, caching headers, auth, paths that try to escape, and the
upstream fallback with its miss log."""

import base64
import http.client
import json
import subprocess
import sys

import httpx
import pytest
from conftest import clean_venv, isolated_pip_env
from support.index_server import LocalIndex
from support.server import running
from support.wheels import make_wheel

from factory.index.check import check
from factory.index.distfile import inspect_wheel
from factory.index.publish import publish
from factory.serve.auth import add_user

JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    index = root / "index"
    # Ours: a project named like one the upstream has too, at another version.
    publish(index, [inspect_wheel(make_wheel(root / "w", "fixture-pure", "9.9", body="ours"))], "")
    assert check(index, "").ok  # read with a strict client first
    return index


def raw_get(base, path, headers=None):
    """GET a path exactly as given (httpx would normalize dot segments)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read()


def test_negotiation_caching_and_names(index, tmp_path):
    with running(index, tmp_path, "--no-fallback") as url:
        page = httpx.get(f"{url}/simple/fixture-pure/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        assert page.status_code == 200
        assert page.headers["content-type"] == "application/vnd.pypi.simple.v1+json"
        assert page.headers["vary"] == "Accept"
        assert json.loads(page.text)["name"] == "fixture-pure"
        html = httpx.get(f"{url}/simple/fixture-pure/")
        assert html.headers["content-type"].startswith("text/html") and "Links for fixture-pure" in html.text
        preferred = httpx.get(f"{url}/simple/fixture-pure/",
                              headers={"Accept": "application/vnd.pypi.simple.v1+json;q=0.2, text/html"})
        assert preferred.headers["content-type"].startswith("text/html")
        again = httpx.get(f"{url}/simple/fixture-pure/", headers={"If-None-Match": html.headers["etag"]})
        assert again.status_code == 304 and html.headers["last-modified"]
        moved = httpx.get(f"{url}/simple/Fixture_Pure/")
        assert moved.status_code == 301 and moved.headers["location"] == "/simple/fixture-pure/"
        link = json.loads(page.text)["files"][0]["url"]
        wheel = httpx.get(httpx.URL(f"{url}/simple/fixture-pure/").join(link))
        assert wheel.status_code == 200 and wheel.headers["content-type"] == "application/zip"
        metadata = httpx.get(httpx.URL(f"{url}/simple/fixture-pure/").join(link + ".metadata"))
        assert metadata.status_code == 200 and b"Name: fixture-pure" in metadata.content


def test_credentials_are_required_and_checked(index, tmp_path):
    users = tmp_path / "users"
    add_user(users, "alice", "s3cret")
    token = subprocess.run([sys.executable, "-m", "factory", "users", "add", str(users), "ci", "--token"],
                           input="tok-123\n", capture_output=True, text=True, env={"FACTORY_UPSTREAM": "http://x/", "PATH": "/usr/bin"})
    assert token.returncode == 0, token.stderr
    assert "s3cret" not in users.read_text() and "tok-123" not in users.read_text()  # hashed
    with running(index, tmp_path / "state", "--no-fallback", "--users", str(users), auth=("alice", "s3cret")) as url:
        anonymous = httpx.get(f"{url}/simple/")
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(f"{url}/simple/", auth=("alice", "wrong")).status_code == 401
        assert httpx.get(f"{url}/simple/", auth=("mallory", "s3cret")).status_code == 401
        assert httpx.get(f"{url}/simple/", auth=("alice", "s3cret")).status_code == 200
        assert httpx.get(f"{url}/simple/", headers={"Authorization": "Bearer tok-123"}).status_code == 200
        assert httpx.get(f"{url}/simple/", auth=("anyone", "tok-123")).status_code == 200  # a .netrc token
        assert httpx.get(f"{url}/files/", headers={"Authorization": "Basic !!!"}).status_code == 401
        python = clean_venv(tmp_path / "venv")
        host = url.removeprefix("http://")
        done = subprocess.run([str(python), "-m", "pip", "install", "--isolated", "--no-cache-dir",
                               "--index-url", f"http://alice:s3cret@{host}/simple/", "fixture-pure"],
                              capture_output=True, text=True, env=isolated_pip_env())
        assert done.returncode == 0, done.stderr


ESCAPES = [
    "/files/../manifest.sqlite3",
    "/files/%2e%2e/manifest.sqlite3",
    "/files/..%2fmanifest.sqlite3",
    "/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/files/....//....//etc/passwd",
    "/files//etc/passwd",
    "/files/%2fetc%2fpasswd",
    "/files/..%5c..%5cmanifest.sqlite3",
    "/simple/../manifest.sqlite3",
    "/simple/%2e%2e/manifest.sqlite3",
    "/manifest.sqlite3",
    "/.lock",
    "/files/",
    "/simple/.pages/",
    "/simple/.root/current/index.html",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_no_path_leaves_the_tree_and_nothing_is_listed(index, tmp_path, path):
    with running(index, tmp_path, "--no-fallback") as url:
        status, body = raw_get(url, path)
    assert status in (400, 404), (path, status)
    assert b"SQLite" not in body and b"root:" not in body and b"<a " not in body


def test_fallback_passes_upstream_projects_through_and_logs_the_misses(index, tmp_path, local_index, sdists):
    log = tmp_path / "misses.jsonl"
    with running(index, tmp_path, "--miss-log", str(log), upstream=local_index.url) as url:
        ours = httpx.get(f"{url}/simple/fixture-pure/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        assert [f["filename"] for f in ours.json()["files"]] == ["fixture_pure-9.9-py3-none-any.whl"]  # never mixed
        theirs = httpx.get(f"{url}/simple/fixture-cext/", headers={"Accept": "application/vnd.pypi.simple.v1+json",
                                                                    "User-Agent": 'pip/26.0 {"cpu":"aarch64"}'})
        assert theirs.status_code == 200
        (entry,) = theirs.json()["files"]
        assert entry["url"].startswith("../../upstream/fixture-cext/")
        download = httpx.get(httpx.URL(f"{url}/simple/fixture-cext/").join(entry["url"]),
                             headers={"User-Agent": "uv/0.13.0"})
        assert download.status_code == 200 and download.content == sdists["fixture-cext"].read_bytes()
        forged = entry["url"].replace("/upstream/fixture-cext/", "/upstream/fixture-cext/0")
        assert httpx.get(httpx.URL(f"{url}/simple/fixture-cext/").join(forged)).status_code == 404
        other = base64.urlsafe_b64encode(b"http://127.0.0.1:1/etc/passwd").decode().rstrip("=")
        signature = entry["url"].split("/")[4]
        assert httpx.get(f"{url}/upstream/fixture-cext/{signature}/{other}/passwd").status_code == 404  # no open proxy
        # The test upstream redirects what it lacks to another host: a redirect serve does not follow.
        assert httpx.get(f"{url}/simple/no-such-project-anywhere/").status_code == 502
        assert httpx.get(f"{url}/files/aa/bb/x/fixture_cext-2.0-py3-none-any.whl").status_code == 404
    records = [json.loads(line) for line in log.read_text().splitlines()]
    got = [(r["kind"], r["project"], r["version"], r["status"]) for r in records]
    assert got == [("project", "fixture-cext", None, 200), ("file", "fixture-cext", "1.0.0", 200),
                   ("project", "no-such-project-anywhere", None, 502), ("file", "fixture-cext", "2.0", 404)]
    assert records[0]["cpu"] == "aarch64" and records[1]["installer"] == "uv 0.13.0"
    assert all(r["client"] == "127.0.0.1" and r["ts"].endswith("Z") for r in records)


def test_a_closed_index_logs_what_it_lacks(index, tmp_path):
    log = tmp_path / "misses.jsonl"
    with running(index, tmp_path, "--no-fallback", "--miss-log", str(log)) as url:
        assert httpx.get(f"{url}/simple/six/").status_code == 404
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert (record["kind"], record["project"], record["status"]) == ("project", "six", 404)


@pytest.mark.parametrize("path", ["/simple/" + "a" * 300 + "/", "/simple/" + "a" * 300, "/files/" + "a" * 300 + ".whl",
                                  "/files/" + "/".join(["aaaaaaaaaa"] * 500) + "/x-1.0.tar.gz"])
def test_names_too_long_for_the_file_system_are_not_found(index, tmp_path, path):
    """Issue 12, item 15: a name over 255 characters made `factory serve` answer 500 (ENAMETOOLONG)."""
    log = tmp_path / "misses.jsonl"
    with running(index, tmp_path, "--no-fallback", "--miss-log", str(log)) as url:
        status, body = raw_get(url, path)
        assert status in (400, 404), (status, body[:200])
        assert httpx.get(f"{url}/simple/fixture-pure/").status_code == 200  # and it still serves
    assert "a" * 201 not in (log.read_text() if log.exists() else "")  # no miss for a name no project has


@pytest.fixture
def upstream(sdists):
    """A local upstream of our own, for what the shared one does not hold."""
    with LocalIndex() as index:
        yield index


def test_fallback_follows_no_redirect_off_the_upstreams_host(index, tmp_path, upstream, sdists):
    """Issue 12, item 8: an upstream file answering 302 to a loopback address had the proxy
    fetch it and relay the answer (here a service that must not leak)."""
    with LocalIndex() as secret:  # another host:port, as a local service would be
        secret.add_file("secret", make_wheel(tmp_path / "s", "secret", "1.0", body="SECRET"))
        target = secret.url.replace("/simple/", "/files/secret-1.0-py3-none-any.whl")
        assert httpx.get(target).status_code == 200
        upstream.add_file("fixture-moved", sdists["fixture-pure"], redirect=target)
        with running(index, tmp_path, upstream=upstream.url) as url:
            page = httpx.get(f"{url}/simple/fixture-moved/", headers={"Accept": JSON})
            (entry,) = page.json()["files"]
            relayed = httpx.get(httpx.URL(f"{url}/simple/fixture-moved/").join(entry["url"]))
        assert relayed.status_code == 502 and b"SECRET" not in relayed.content
        assert not any(r.startswith("/files/secret") for r in secret.requests[1:])  # never even asked


def test_fallback_pages_check_and_escape_what_the_upstream_says(index, tmp_path, upstream, sdists):
    """Issue 12, items 9, 18 and 20: an upstream hash came out as markup in the HTML, and the
    JSON said `"versions": [""]`; both forms must read cleanly with a strict client."""
    from pypi_simple import ProjectPage

    upstream.add_file("fixture-hostile", sdists["fixture-pure"], sha256='abc"><script>alert(1)</script>')
    upstream.add_file("fixture-hostile", make_wheel(tmp_path / "w", "fixture-hostile", "2.0"))
    with running(index, tmp_path, upstream=upstream.url) as url:
        page_url = f"{url}/simple/fixture-hostile/"
        html = httpx.get(page_url)
        as_json = httpx.get(page_url, headers={"Accept": JSON})
    assert html.status_code == as_json.status_code == 200
    # Not a hash: dropped, neither markup nor escaped text (the links' own hex may hold "abc").
    assert "<script>" not in html.text and "alert(1)" not in html.text and "#sha256=abc" not in html.text
    data = as_json.json()
    assert data["versions"] == ["1.0.0", "2.0"]
    files = {f["filename"]: f for f in data["files"]}
    assert files["fixture_hostile-2.0-py3-none-any.whl"]["hashes"]["sha256"] == inspect_wheel(
        tmp_path / "w" / "fixture_hostile-2.0-py3-none-any.whl").sha256
    assert files["fixture_pure-1.0.0.tar.gz"]["hashes"] == {}  # not a hash: dropped, never passed on
    for page in (ProjectPage.from_html("fixture-hostile", html.text, page_url),
                 ProjectPage.from_json_data(data, page_url)):
        assert sorted(p.filename for p in page.packages) == sorted(files)


def test_fallback_links_outlive_a_restart(index, tmp_path, local_index, sdists):
    """Issue 12, item 19: links were signed with a key of the process, so a lock file's
    `/upstream/...` URLs answered 404 after `factory serve` restarted."""
    with running(index, tmp_path, upstream=local_index.url) as url:
        (entry,) = httpx.get(f"{url}/simple/fixture-cext/", headers={"Accept": JSON}).json()["files"]
    link = entry["url"].removeprefix("../..")
    key = tmp_path / "serve" / "upstream.key"
    assert key.stat().st_mode & 0o777 == 0o600
    with running(index, tmp_path, upstream=local_index.url) as url:
        again = httpx.get(url + link)
    assert again.status_code == 200 and again.content == sdists["fixture-cext"].read_bytes()


def test_served_pages_carry_absolute_provenance_a_strict_client_reads(tmp_path, config):
    """Issue 12, item 17: over HTTP the pages said file:///..., which pypi-simple rejects; the
    files hold relative links, and the server makes them absolute for its clients."""
    from pypi_simple import ProjectPage
    from support.signing import signed

    served = tmp_path / "served"
    publish(served, signed(config, [inspect_wheel(make_wheel(tmp_path / "w", "demo", "1.0"))]), "")
    with running(served, tmp_path / "state", "--no-fallback") as url:
        page_url = f"{url}/simple/demo/"
        as_json = httpx.get(page_url, headers={"Accept": JSON})
        html = httpx.get(page_url)
        (package,) = ProjectPage.from_json_data(as_json.json(), page_url).packages
        assert package.provenance_url == f"{url}/{package.url.removeprefix(url + '/')}.provenance"
        (from_html,) = ProjectPage.from_html("demo", html.text, page_url).packages
        assert from_html.provenance_url == package.provenance_url
        provenance = httpx.get(package.provenance_url)
        assert provenance.status_code == 200 and provenance.json()["version"] == 1
        again = httpx.get(page_url, headers={"Accept": JSON, "If-None-Match": as_json.headers["etag"]})
        assert again.status_code == 304
