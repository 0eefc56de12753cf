"""The status site: written after each build, served by `factory serve` under the same auth,
readable in a real browser (headless Chromium) without JavaScript."""

import os
import subprocess
import sys
import tempfile

import httpx
import pytest
from support.server import running

from factory.pipeline.request import parse_request
from factory.pipeline.run import run
from factory.serve.auth import add_user
from factory.status import render, site

CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_pages_escape_what_they_show():
    row = render.Row("b1", "1.0", "failed", "2026-11-25", (("cp311-x86_64", "failed", "compile", "<script>x</script>"),),
                     "compile", "a <b>bold</b> reason", "../records/p/b1.json", None, ())
    html = render.project("p", [("1.0", [])], [row], "now")
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;bold" in html
    assert "<script" not in html.lower().replace("&lt;script", "")  # no JavaScript at all


def browser(*args):
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([*CHROMIUM, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                              timeout=120)


@pytest.mark.container
def test_a_failed_build_shows_with_its_reason_in_a_real_browser(config, builder_image, tmp_path):
    record = run(parse_request("fixture-nosuchheader==1.0.0"), config)
    assert record.failure_class == "missing-system-library"
    run(parse_request("fixture-pure==1.0.0"), config)
    site.update(config, ["fixture-nosuchheader", "fixture-pure"])
    users = tmp_path / "users"
    add_user(users, "alice", "wonderland")
    with running(config.index_dir, config.state_dir, "--users", str(users), "--no-fallback") as url:
        assert httpx.get(f"{url}/status/").status_code == 401  # the same auth as the index
        front = httpx.get(f"{url}/status/", auth=("alice", "wonderland"))
        assert front.status_code == 200 and "fixture-nosuchheader" in front.text and "fixture-pure" in front.text
        page = f"http://alice:wonderland@{url.removeprefix('http://')}/status/projects/fixture-nosuchheader.html"
        dom = browser("--dump-dom", page)
        assert "missing-system-library" in dom.stdout and "factory_no_such_library.h" in dom.stdout, dom.stderr
        shot = tmp_path / "page.png"
        browser("--window-size=1280,900", "--force-device-scale-factor=2", f"--screenshot={shot}", page)
        assert shot.is_file() and shot.stat().st_size > 10_000
        seen = subprocess.run(["tesseract", str(shot), "-"], capture_output=True, text=True).stdout
        assert "fixture-nosuchheader" in seen and "missing-system-library" in seen, seen  # what a person sees
        # The page links the build's record and log, which the server serves too.
        assert httpx.get(f"{url}/status/records/fixture-nosuchheader/{record.id}.json",
                         auth=("alice", "wonderland")).json()["failure_class"] == "missing-system-library"
        assert httpx.get(f"{url}/status/records/fixture-nosuchheader/{record.id}.log",
                         auth=("alice", "wonderland")).status_code == 200
    rebuilt = subprocess.run([sys.executable, "-m", "factory", "status", "--html"], capture_output=True, text=True,
                             env={**os.environ, "FACTORY_INDEX_DIR": str(config.index_dir),
                                  "FACTORY_STATE_DIR": str(config.state_dir)})
    assert rebuilt.returncode == 0 and "wrote the status site" in rebuilt.stdout
