"""The static index: both forms of every page, immutability, yank, project status, rebuild, and
`factory index check` finding what is wrong."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from packaging.version import Version
from support.wheels import make_wheel

from factory.index import pages
from factory.index.check import check
from factory.index.distfile import inspect_wheel
from factory.index.manifest import FileEntry, Manifest, ProjectStatus
from factory.index.publish import PublishError, file_path, publish, rebuild, set_status, yank


@pytest.fixture
def index(tmp_path):
    return tmp_path / "index"


def base(index):
    """The default base-url: none, so provenance links are relative like the file links."""
    return ""


def put(index, *wheels):
    return publish(index, [inspect_wheel(w) for w in wheels], base(index))


def stored(index, project, url):
    """The file a link names, resolved as a URL is (not through the page's symlink)."""
    return index / os.path.normpath(f"simple/{project}/{url}")


def page(index, project, kind="json"):
    text = (index / "simple" / project / f"index.{kind}").read_text()
    return json.loads(text) if kind == "json" else text


def test_pages_in_both_forms_say_the_same(index, tmp_path):
    wheels = [make_wheel(tmp_path / "w", "Demo_Pkg", v, body=v) for v in ("1.10", "1.9", "2.0")]
    done = put(index, *wheels)
    assert len(done.entries) == 3
    root = json.loads((index / "simple" / "index.json").read_text())
    assert root == {"meta": {"api-version": pages.API_VERSION}, "projects": [{"name": "demo-pkg"}]}
    assert '<a href="demo-pkg/">demo-pkg</a>' in (index / "simple" / "index.html").read_text()
    data = page(index, "demo-pkg")
    assert data["name"] == "demo-pkg" and data["versions"] == ["1.9", "1.10", "2.0"]
    names = [f["filename"] for f in data["files"]]
    assert names == sorted(w.name for w in wheels)  # ascending by full file name
    html = page(index, "demo-pkg", "html")
    assert f'<meta name="pypi:repository-version" content="{pages.API_VERSION}">' in html
    for f, wheel in zip(data["files"], sorted(wheels)):
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert f["hashes"] == {"sha256": digest} and f["size"] == wheel.stat().st_size
        assert f["upload-time"].endswith("Z") and f["yanked"] is False and f["provenance"] is None
        assert f["requires-python"] == ">=3.8"
        path = stored(index, "demo-pkg", f["url"])
        assert path.read_bytes() == wheel.read_bytes()
        sidecar = path.with_name(path.name + ".metadata").read_bytes()
        assert sidecar == inspect_wheel(wheel).metadata  # byte-identical to the wheel's METADATA
        assert f["core-metadata"] == {"sha256": hashlib.sha256(sidecar).hexdigest()} == f["dist-info-metadata"]
        assert f'href="{f["url"]}#sha256={digest}"' in html
        assert f'data-core-metadata="sha256={f["core-metadata"]["sha256"]}"' in html
    assert check(index, base(index)).ok


def test_publishing_the_same_bytes_again_changes_nothing(index, tmp_path):
    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    put(index, wheel)
    before = page(index, "demo")
    again = put(index, wheel)
    assert again.entries == () and again.pages == ()
    assert page(index, "demo") == before


def test_other_bytes_under_a_published_name_are_refused(index, tmp_path):
    put(index, make_wheel(tmp_path / "a", "demo", "1.0", body="first"))
    before = {p: p.read_bytes() for p in index.rglob("*") if p.is_file() and "manifest" not in p.name}
    other = make_wheel(tmp_path / "b", "demo", "1.0", body="second")
    extra = make_wheel(tmp_path / "b", "demo", "1.1", body="new")
    with pytest.raises(PublishError, match="immutable.*build tag"):
        put(index, extra, other)
    after = {p: p.read_bytes() for p in index.rglob("*") if p.is_file() and "manifest" not in p.name}
    assert after == before  # all or none: 1.1 was not published either
    with Manifest(index / "manifest.sqlite3") as manifest:
        assert [e.version for e in manifest.files("demo")] == ["1.0"]


def test_publishing_touches_only_its_project_and_a_new_project_the_root(index, tmp_path):
    put(index, make_wheel(tmp_path / "w", "alpha", "1.0"))
    put(index, make_wheel(tmp_path / "w", "beta", "1.0"))
    alpha = os.readlink(index / "simple" / "alpha")
    root = os.readlink(index / "simple" / ".root" / "current")
    done = put(index, make_wheel(tmp_path / "w", "beta", "2.0"))
    assert done.pages == (index / "simple" / "beta",)
    assert os.readlink(index / "simple" / "alpha") == alpha
    assert os.readlink(index / "simple" / ".root" / "current") == root
    done = put(index, make_wheel(tmp_path / "w", "gamma", "1.0"))
    assert done.pages == (index / "simple" / "gamma", index / "simple")


def test_yank_and_project_status(index, tmp_path):
    put(index, *(make_wheel(tmp_path / "w", "demo", v) for v in ("1.0", "2.0")))
    assert yank(index, "demo", "2.0", "broken build", base(index)) == 1
    files = {f["filename"]: f for f in page(index, "demo")["files"]}
    assert files["demo-2.0-py3-none-any.whl"]["yanked"] == "broken build"
    assert files["demo-1.0-py3-none-any.whl"]["yanked"] is False
    assert 'data-yanked="broken build"' in page(index, "demo", "html")
    yank(index, "demo", "2.0", None, base(index))
    assert all(f["yanked"] is False for f in page(index, "demo")["files"])
    with pytest.raises(PublishError, match="no file"):
        yank(index, "demo", "9.9", "", base(index))
    set_status(index, "demo", ProjectStatus("archived", "moved on"), base(index))
    # PEP 792 puts the status beside "meta", where clients read it (issue 12, item 16).
    assert page(index, "demo")["project-status"] == {"status": "archived", "reason": "moved on"}
    assert "project-status" not in page(index, "demo")["meta"]
    html = page(index, "demo", "html")
    assert '<meta name="pypi:project-status" content="archived">' in html
    assert '<meta name="pypi:project-status-reason" content="moved on">' in html
    assert check(index, base(index)).ok


def test_rebuild_writes_the_same_pages_from_the_manifest(index, tmp_path):
    put(index, *(make_wheel(tmp_path / "w", n, "1.0") for n in ("a", "b", "c")))
    before = {n: page(index, n) for n in ("a", "b", "c")}
    for link in ("a", "b", "c"):
        (index / "simple" / link).unlink()  # pages lost: the manifest still knows
    assert rebuild(index, base(index)) == 3
    assert {n: page(index, n) for n in ("a", "b", "c")} == before
    assert check(index, base(index)).ok


def test_check_finds_what_is_wrong(index, tmp_path):
    put(index, make_wheel(tmp_path / "w", "demo", "1.0"), make_wheel(tmp_path / "w", "other", "1.0"))
    data = page(index, "demo")
    path = stored(index, "demo", data["files"][0]["url"])
    path.write_bytes(path.read_bytes() + b"x")
    sidecar = path.with_name(path.name + ".metadata")
    sidecar.write_bytes(b"Name: tampered\n")
    other = (index / "simple" / "other" / "index.json").resolve()
    data = json.loads(other.read_text())
    data["files"][0]["yanked"] = "only in JSON"
    other.write_text(json.dumps(data))
    report = check(index, base(index))
    text = "\n".join(report.problems)
    assert "demo/demo-1.0-py3-none-any.whl: the file's sha256 differs" in text
    assert "the file's size differs" in text
    assert "the metadata sidecar's sha256 differs" in text
    assert "other/other-1.0-py3-none-any.whl: `yanked` differs between HTML" in text
    path.unlink()
    assert "demo/demo-1.0-py3-none-any.whl: the file is missing from the index" in "\n".join(
        check(index, base(index)).problems)


def test_the_command_line(index, tmp_path):
    put(index, make_wheel(tmp_path / "w", "demo", "1.0"), make_wheel(tmp_path / "w", "demo", "2.0"))
    env = {**os.environ, "FACTORY_INDEX_DIR": str(index), "FACTORY_STATE_DIR": str(tmp_path / "state"),
           "FACTORY_UPSTREAM": "http://127.0.0.1:9/"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "factory", *a], capture_output=True, text=True, env=env)  # noqa: E731
    assert "yanked 1 file of demo==2.0" in run("yank", "demo==2.0", "--reason", "bad").stdout
    assert "demo: deprecated" in run("index", "set-status", "Demo", "deprecated", "--reason", "old").stdout
    rebuilt = run("publish", "--rebuild")
    assert rebuilt.returncode == 0 and "rewrote the pages of 1 projects" in rebuilt.stdout
    checked = run("index", "check")
    assert checked.returncode == 0 and "ok: 1 projects, 2 files checked, 0 signatures verified" in checked.stdout
    (index / "simple" / "demo" / "index.json").resolve().write_text("{}")
    assert run("index", "check").returncode == 1
    assert run("yank", "demo").returncode == 2


def test_a_publish_interrupted_before_its_pages_is_listed_next_time(index, tmp_path):
    wheel = make_wheel(tmp_path / "w", "demo", "1.0")
    put(index, make_wheel(tmp_path / "w", "other", "1.0"))
    # As if a publisher died after recording the file, before writing any page for it.
    dist = inspect_wheel(wheel)
    with Manifest(index / "manifest.sqlite3") as manifest:
        manifest.add([FileEntry(dist.filename, "demo", "1.0", dist.sha256, dist.size, None, dist.metadata_sha256,
                                "2026-11-22T00:00:00.000000Z", None, file_path(dist.sha256, dist.filename))])
    (index / file_path(dist.sha256, dist.filename)).parent.mkdir(parents=True)
    (index / file_path(dist.sha256, dist.filename)).write_bytes(wheel.read_bytes())
    (index / (file_path(dist.sha256, dist.filename) + ".metadata")).write_bytes(dist.metadata)
    assert check(index, base(index)).pending == 1
    again = put(index, wheel)  # the same bytes again: nothing new, but the pages catch up
    assert again.entries == () and index / "simple" / "demo" in again.pages
    assert [f["filename"] for f in page(index, "demo")["files"]] == [wheel.name]
    report = check(index, base(index))
    assert report.ok and report.pending == 0


def test_a_quarantined_project_offers_no_files(index, tmp_path):
    """Issue 12, item 16: PEP 792 forbids offering a quarantined project's files."""
    put(index, *(make_wheel(tmp_path / "w", "demo", v) for v in ("1.0", "2.0")))
    set_status(index, "demo", ProjectStatus("quarantined", "malware"), base(index))
    data = page(index, "demo")
    assert data["project-status"] == {"status": "quarantined", "reason": "malware"}
    assert data["files"] == [] and data["versions"] == []
    html = page(index, "demo", "html")
    assert "<a " not in html and '<meta name="pypi:project-status" content="quarantined">' in html
    report = check(index, base(index))
    assert report.ok and report.pending == 0, report.problems  # withheld on purpose, not pending
    set_status(index, "demo", None, base(index))
    assert len(page(index, "demo")["files"]) == 2 and check(index, base(index)).ok
    # A quarantined project's page that offers files anyway is caught.
    pages_dir = (index / "simple" / "demo").resolve()
    listing = (pages_dir / "index.json").read_text()
    set_status(index, "demo", ProjectStatus("quarantined"), base(index))
    (index / "simple" / "demo" / "index.json").resolve().write_text(
        listing.replace('"name":"demo"', '"name":"demo","project-status":{"status":"quarantined"}'))
    assert any("quarantined, yet its pages offer files" in p for p in check(index, base(index)).problems)


def test_pages_escape_what_they_carry_and_list_versions_only(index, tmp_path):
    """Issue 12, items 9 and 18: values go into the HTML escaped, and an entry without a version
    (as upstream pages gave) adds none to `versions`."""
    hostile = FileEntry("x-1.0.tar.gz", "x", "", 'abc"><script>alert(1)</script>', None, '>=3"><b', 'd"><i',
                        "", None, "files/x-1.0.tar.gz")
    html = pages.project_html("x", [hostile], None, "")
    assert "<script>" not in html and '"><b' not in html and '"><i' not in html
    assert "&quot;&gt;&lt;script&gt;" in html
    assert json.loads(pages.project_json("x", [hostile], None, ""))["versions"] == []


def test_provenance_links_are_relative_by_default_and_absolute_under_base_url(index, tmp_path, config):
    """Issue 12, item 17: with no base-url the pages said file:///..., which a strict client
    rejects over HTTP and a copied index no longer finds; relative links travel with the index."""
    from support.signing import signed

    from factory.pipeline.sign import SigningSettings
    from factory.verify import SignatureCheck

    signatures = SignatureCheck(SigningSettings.from_config(config))
    dists = signed(config, [inspect_wheel(make_wheel(tmp_path / "w", "demo", v)) for v in ("1.0", "2.0")])
    publish(index, dists, "")
    (entry, _) = page(index, "demo")["files"]
    assert entry["provenance"] == entry["url"] + ".provenance" and entry["provenance"].startswith("../../files/")
    assert f'data-provenance="{entry["provenance"]}"' in page(index, "demo", "html")
    report = check(index, "", signatures)
    assert report.ok and report.signatures == 4, report.problems  # a bundle and an attestation per file
    copied = tmp_path / "copied"
    shutil.copytree(index, copied, symlinks=True)
    assert check(copied, "", signatures).ok  # a copy still points at its own files
    assert check(copied, "https://index.example.internal/private/", signatures).ok  # relative, served anywhere
    served_at = "https://index.example.internal/private/"
    assert rebuild(copied, served_at) == 1
    (entry, _) = page(copied, "demo")["files"]
    assert entry["provenance"] == served_at + entry["url"].removeprefix("../../") + ".provenance"
    assert check(copied, served_at, signatures).ok
    # Absolute links to somewhere else are not the index's own.
    assert any("does not resolve to the file's provenance" in p for p in check(copied, "", signatures).problems)


def test_check_reads_every_page_with_a_strict_client(index, tmp_path):
    """Issue 12, item 20: what mousebender let through, pypi-simple's models do not."""
    put(index, make_wheel(tmp_path / "w", "demo", "1.0"))
    assert check(index, base(index)).ok
    page_file = (index / "simple" / "demo" / "index.json").resolve()
    original = page_file.read_text()
    cases = {
        "a file:// provenance": lambda d: d["files"][0].update(provenance="file:///srv/index/x.provenance"),
        "an upload time that is no time": lambda d: d["files"][0].update({"upload-time": "yesterday"}),
        "an unknown status": lambda d: d.update({"project-status": {"status": "abandoned"}}),
        "a size that is no number": lambda d: d["files"][0].update(size="big"),
        "hashes that are not strings": lambda d: d["files"][0].update(hashes={"sha256": 1}),
    }
    for what, change in cases.items():
        data = json.loads(original)
        change(data)
        page_file.write_text(json.dumps(data))
        problems = check(index, base(index)).problems
        assert any("unreadable by a strict client" in p for p in problems), (what, problems)
    data = json.loads(original)
    data["meta"]["project-status"] = {"status": "archived"}  # where clients do not look
    page_file.write_text(json.dumps(data))
    assert any("status is under `meta`" in p for p in check(index, base(index)).problems)
    data = json.loads(original)
    data["versions"] = [""]
    page_file.write_text(json.dumps(data))
    assert any("`versions` must be a list of versions" in p for p in check(index, base(index)).problems)
    root = (index / "simple" / "index.json").resolve()
    root.write_text(json.dumps({"projects": [{"name": "demo"}]}))  # no meta
    assert any("root: page unreadable by a strict client" in p for p in check(index, base(index)).problems)


def _rewritten(wheel, dest, change):
    """A copy of ``wheel`` named ``dest`` whose members ``change(name, data)`` rewrites."""
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            name, data = change(info.filename, src.read(info))
            out.writestr(zipfile.ZipInfo(name, date_time=info.date_time), data)
    return dest


@pytest.mark.parametrize("lie", ["metadata-name", "metadata-version", "dist-info"])
def test_a_wheel_that_is_not_what_its_name_says_is_refused(index, tmp_path, lie):
    """Issue 12, item 10: only the file name was checked, so a wheel whose METADATA (or .dist-info)
    named another project or version was published, and, the index being immutable, pip refused
    that version for good."""
    from factory.failures import BuildFailure, FailureClass
    from factory.index.distfile import WheelMismatch
    from factory.pipeline.repair import check as host_check

    good = make_wheel(tmp_path / "good", "demo", "1.0")

    def change(name, data):
        if lie == "metadata-name" and name.endswith("METADATA"):
            return name, data.replace(b"Name: demo", b"Name: other")
        if lie == "metadata-version" and name.endswith("METADATA"):
            return name, data.replace(b"Version: 1.0", b"Version: 2.0")
        if lie == "dist-info":
            return name.replace("demo-1.0.dist-info", "demo-2.0.dist-info"), data
        return name, data

    (tmp_path / "bad").mkdir()
    bad = _rewritten(good, tmp_path / "bad" / good.name, change)
    with pytest.raises(WheelMismatch, match="demo-1.0-py3-none-any.whl: its (METADATA|.dist-info directory) says"):
        inspect_wheel(bad)
    with pytest.raises(BuildFailure) as refused:  # the host's check after the build says so first
        host_check(bad, "demo", Version("1.0"))
    assert refused.value.failure_class == FailureClass.POLICY
    assert host_check(good, "demo", Version("1.0")).policy == "pure"
