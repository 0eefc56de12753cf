"""A signed index, no container needed (the wheels are made by hand and signed for real with the
session's Sigstore stack): `factory index check` verifies every bundle and provenance against the
file and the manifest, and a signed wheel whose bundle is gone is never "unsigned"."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from support.signing import signed
from support.wheels import make_wheel

from factory.index.check import check
from factory.index.distfile import inspect_wheel
from factory.index.manifest import Manifest
from factory.index.publish import publish
from factory.pipeline.sign import SigningSettings
from factory.verify import SignatureCheck


@pytest.fixture
def index(config, tmp_path):
    """demo 1.0 and 2.0, signed; what check and verify are given."""
    wheels = [inspect_wheel(make_wheel(tmp_path / "w", "demo", v, body=v)) for v in ("1.0", "2.0")]
    publish(config.index_dir, signed(config, wheels), "")
    return config.index_dir


def stored(index, filename):
    with Manifest.existing(index) as manifest:
        return index / manifest.get(filename).path


def factory(config, *args):
    env = {**os.environ, "FACTORY_INDEX_DIR": str(config.index_dir), "FACTORY_STATE_DIR": str(config.state_dir),
           "FACTORY_UPSTREAM": config.upstream}
    return subprocess.run([sys.executable, "-m", "factory", *args], capture_output=True, text=True, env=env)


ONE, TWO = "demo-1.0-py3-none-any.whl", "demo-2.0-py3-none-any.whl"


def problems(config):
    report = check(config.index_dir, "", SignatureCheck(SigningSettings.from_config(config)))
    return "\n".join(report.problems)


def test_a_whole_signed_index_passes_with_every_signature_verified(index, config):
    done = factory(config, "index", "check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: 1 projects, 2 files checked, 4 signatures verified" in done.stdout


def test_garbage_or_swapped_provenance_is_caught(index, config):
    """Issue 12, item 3: `index check` never read the provenance: garbage or another file's passed."""
    one, two = (stored(index, f).with_name(f + ".provenance") for f in (ONE, TWO))
    kept = one.read_bytes()
    one.write_bytes(b"not a provenance object")
    assert f"demo/{ONE}: the provenance is not a PEP 740 provenance object" in problems(config)
    one.write_bytes(two.read_bytes())  # well-formed, validly signed: for the other wheel
    assert f"demo/{ONE}: attestation 1 of the provenance is not a signature of this file" in problems(config)
    one.write_bytes(kept)
    assert problems(config) == ""


def test_a_missing_bundle_of_a_signed_wheel_is_a_failure_not_unsigned(index, config, tmp_path):
    """Issue 12, item 3: deleting the bundle downgraded the wheel to "unsigned" (verify exited 0)."""
    wheel = stored(index, ONE)
    wheel.with_name(ONE + ".sigstore.json").unlink()
    assert f"demo/{ONE}: signed, but its Sigstore bundle is missing" in problems(config)
    copy = tmp_path / ONE
    shutil.copyfile(wheel, copy)
    done = factory(config, "verify", str(copy), "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    (finding,) = json.loads(done.stdout)["distributions"]
    assert finding["signature"] == "failed" and "bundle) is missing" in finding["detail"]
    deep = factory(config, "verify", "--deep", str(copy), "--json")
    assert deep.returncode == 1 and json.loads(deep.stdout)[0]["verdict"] == "failed"


def test_a_swapped_file_with_both_page_hashes_rewritten_is_caught(index, config, tmp_path):
    """Issue 12, item 3: the pages were never compared with the manifest, so swapping a file's bytes
    and rewriting its hash in both pages passed."""
    wheel = stored(index, ONE)
    evil = make_wheel(tmp_path / "evil", "demo", "1.0", body="evil")
    old_sha, new_sha = inspect_wheel(wheel).sha256, inspect_wheel(evil).sha256
    wheel.write_bytes(evil.read_bytes())
    for name in ("index.html", "index.json"):
        page = (index / "simple" / "demo" / name).resolve()
        page.write_text(page.read_text().replace(old_sha, new_sha))
    found = problems(config)
    assert f"demo/{ONE}: the page's sha256 is not the manifest's" in found
    assert f"demo/{ONE}: the file's sha256 differs from the manifest's" in found
    assert factory(config, "index", "check").returncode == 1
