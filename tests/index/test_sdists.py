"""The exact upstream sdist of each build beside its wheels: hash-checked, with its PKG-INFO as
the PEP 658 sidecar where PEP 643 says it holds, and an attestation of where it came from; pip
and uv get it with --no-binary."""

import base64
import hashlib
import json
import os
import subprocess
import sys

import pytest
from conftest import clean_venv, isolated_pip_env

from factory.index.manifest import Manifest
from factory.pipeline.request import parse_request
from factory.pipeline.run import run

pytestmark = pytest.mark.container


def test_the_sdist_a_build_used_is_published_beside_its_wheels(config, builder_image, sdists, tmp_path):
    record = run(parse_request("fixture-pure==1.0.0"), config)
    assert record.status == "built", f"{record.failure_class}: {record.reason}"
    assert set(record.published) == {"fixture_pure-1.0.0-py3-none-any.whl", "fixture_pure-1.0.0.tar.gz"}
    upstream = sdists["fixture-pure"].read_bytes()
    with Manifest.of(config.index_dir) as manifest:
        (entry,) = [e for e in manifest.files("fixture-pure") if e.filename.endswith(".tar.gz")]
    assert entry.sha256 == hashlib.sha256(upstream).hexdigest()  # the exact bytes the upstream served
    page = json.loads((config.index_dir / "simple" / "fixture-pure" / "index.json").read_text())
    (listed,) = [f for f in page["files"] if f["filename"] == "fixture_pure-1.0.0.tar.gz"]
    assert listed["core-metadata"] == {"sha256": hashlib.sha256((config.index_dir / entry.metadata_path).read_bytes())
                                       .hexdigest()}  # PKG-INFO 2.2: its fields hold (PEP 643)
    assert listed["requires-python"] == ">=3.8"
    # Its attestation: where it came from, and that its hash matched the upstream's.
    bundle = json.loads((config.index_dir / (entry.path + ".sigstore.json")).read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == "tag:factory,2026:source/v1"
    assert definition["internalParameters"]["sha256"] == {"declaredUpstream": entry.sha256, "matched": True}
    assert definition["externalParameters"]["url"] == record.source.url
    assert subprocess.run([sys.executable, "-m", "factory", "index", "check"], capture_output=True, text=True,
                          env={**os.environ, "FACTORY_INDEX_DIR": str(config.index_dir),
                               "FACTORY_STATE_DIR": str(config.state_dir)}).returncode == 0

    # pip download --no-binary gets those bytes; uv builds them, with setuptools from the index.
    url = (config.index_dir / "simple").as_uri() + "/"
    got = subprocess.run([sys.executable, "-m", "pip", "download", "--isolated", "--no-deps", "--no-binary", ":all:",
                          "--index-url", url, "--dest", str(tmp_path / "dl"), "fixture-pure==1.0.0"],
                         capture_output=True, text=True, env=isolated_pip_env())
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "dl" / "fixture_pure-1.0.0.tar.gz").read_bytes() == upstream
    python = clean_venv(tmp_path / "venv")
    uv = subprocess.run([sys.executable, "-m", "uv", "pip", "install", "--python", str(python), "--no-config",
                         "--index-url", url, "--no-binary", "fixture-pure", "fixture-pure==1.0.0"],
                        capture_output=True, text=True, env={**isolated_pip_env(), "UV_NO_CACHE": "1"})
    assert uv.returncode == 0, uv.stderr
    done = subprocess.run([str(python), "-c", "import fixture_pure; print(fixture_pure.greet('x'))"],
                          capture_output=True, text=True)
    assert done.stdout.strip() == "hello, x", done.stderr


def test_a_project_whose_sdist_is_refused_publishes_nothing(config):
    record = run(parse_request("evil-dot-dot==1.0"), config)
    assert record.failure_class == "unsafe-archive" and record.published == ()
    manifest = Manifest.existing(config.index_dir)
    with manifest:
        assert manifest.files("evil-dot-dot") == []
