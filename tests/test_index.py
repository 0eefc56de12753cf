"""Stage 6: the static index, its pages, its immutability, and pip reading it over file://."""

import hashlib
import html.parser
import subprocess

import pytest
from conftest import clean_venv, pip_install
from support.wheels import make_wheel

from factory.index.distfile import inspect_wheel
from factory.index.manifest import Manifest
from factory.index.publish import PublishError, publish


class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.append(dict(attrs))


def page_links(path):
    parser = Links()
    parser.feed(path.read_text())
    return parser.links


def test_publish_writes_pages_files_and_sidecars(tmp_path):
    index = tmp_path / "index"
    wheels = [make_wheel(tmp_path / "w", "Demo_Pkg", v, body=v) for v in ("1.10", "1.9", "2.0")]
    done = publish(index, [inspect_wheel(w) for w in wheels])
    assert len(done.entries) == 3
    assert [l["href"] for l in page_links(index / "simple" / "index.html")] == ["demo-pkg/"]
    links = page_links(index / "simple" / "demo-pkg" / "index.html")
    # Ascending order of the full file name.
    names = [l["href"].split("/")[-1].split("#")[0] for l in links]
    assert names == sorted(w.name for w in wheels)
    for link, wheel in zip(links, sorted(wheels)):
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        path, fragment = link["href"].split("#")
        assert fragment == f"sha256={digest}"
        assert path == f"../../files/{digest[:2]}/{digest[2:4]}/{digest}/{wheel.name}"
        stored = (index / "simple" / "demo-pkg" / path).resolve()
        assert stored.read_bytes() == wheel.read_bytes()
        sidecar = stored.with_name(stored.name + ".metadata")
        assert sidecar.read_bytes() == inspect_wheel(wheel).metadata
        meta_hash = "sha256=" + hashlib.sha256(sidecar.read_bytes()).hexdigest()
        assert link["data-core-metadata"] == meta_hash == link["data-dist-info-metadata"]
        assert link["data-requires-python"] == ">=3.8"
    # No temporary files are left behind.
    assert not [p for p in index.rglob(".*") if p.name != ".lock"]


def test_republishing_the_same_bytes_is_a_no_op(tmp_path):
    index = tmp_path / "index"
    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    publish(index, [inspect_wheel(wheel)])
    page = (index / "simple" / "demo" / "index.html").read_bytes()
    again = publish(index, [inspect_wheel(wheel)])
    assert again.entries == () and again.pages == ()
    assert (index / "simple" / "demo" / "index.html").read_bytes() == page


def test_different_bytes_under_a_published_name_are_refused(tmp_path):
    index = tmp_path / "index"
    publish(index, [inspect_wheel(make_wheel(tmp_path / "a", "demo", "1.0", body="first"))])
    before = {p: p.read_bytes() for p in index.rglob("*") if p.is_file() and p.suffix != ".sqlite3"}
    other = make_wheel(tmp_path / "b", "demo", "1.0", body="second")
    extra = make_wheel(tmp_path / "b", "demo", "1.1", body="new")
    with pytest.raises(PublishError, match="immutable"):
        publish(index, [inspect_wheel(extra), inspect_wheel(other)])
    after = {p: p.read_bytes() for p in index.rglob("*") if p.is_file() and p.suffix != ".sqlite3"}
    assert after == before  # all or none: 1.1 was not published either
    with Manifest(index / "manifest.sqlite3") as manifest:
        assert [e.version for e in manifest.files("demo")] == ["1.0"]


def test_publishing_one_project_leaves_other_pages_alone(tmp_path):
    index = tmp_path / "index"
    publish(index, [inspect_wheel(make_wheel(tmp_path / "w", "alpha", "1.0"))])
    publish(index, [inspect_wheel(make_wheel(tmp_path / "w", "beta", "1.0"))])
    alpha_page = index / "simple" / "alpha" / "index.html"
    stamp = alpha_page.stat().st_mtime_ns
    done = publish(index, [inspect_wheel(make_wheel(tmp_path / "w", "beta", "2.0"))])
    assert done.pages == (index / "simple" / "beta" / "index.html",)  # the root page is untouched too
    assert alpha_page.stat().st_mtime_ns == stamp


def test_pip_installs_from_the_index_over_file_urls(tmp_path):
    index = tmp_path / "index"
    publish(index, [inspect_wheel(make_wheel(tmp_path / "w", "demo-pkg", v, body=v)) for v in ("1.0", "2.0")])
    python = clean_venv(tmp_path / "venv")
    done = pip_install(python, index, "demo-pkg")
    assert done.returncode == 0, done.stderr
    out = subprocess.run([str(python), "-c", "import demo_pkg; print(demo_pkg.VALUE)"], capture_output=True, text=True)
    assert out.stdout.strip() == "2.0"


def test_pip_refuses_a_file_whose_hash_does_not_match(tmp_path):
    index = tmp_path / "index"
    done = publish(index, [inspect_wheel(make_wheel(tmp_path / "w", "demo", "1.0"))])
    stored = index / done.entries[0].path
    stored.write_bytes(stored.read_bytes() + b"tampered")
    result = pip_install(clean_venv(tmp_path / "venv"), index, "demo")
    assert result.returncode != 0
    assert "hash" in result.stderr.lower()
