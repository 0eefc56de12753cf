"""Remediated builds: a recipe's security patches are published as VERSION+<label>.N, which
`==VERSION` still selects, with the patches and their hashes in the provenance."""

import base64
import hashlib
import subprocess
import zipfile

import pytest
from conftest import clean_venv, pip_install
from packaging.version import Version
from support.signing import statement_of
from support.wheels import make_wheel

from factory.pipeline.relabel import local_version, relabel
from factory.pipeline.request import parse_request
from factory.pipeline.run import run

FIX = """\
--- a/src/fixture_pure/__init__.py
+++ b/src/fixture_pure/__init__.py
@@ -1,2 +1,2 @@
 def greet(name: str) -> str:
-    return f"hello, {name}"
+    return f"hello (fixed), {name}"
"""


def test_a_relabelled_wheel_says_its_local_version_everywhere(tmp_path):
    wheel = make_wheel(tmp_path / "in", "demo-pkg", "1.2.3", body="fixed")
    out = relabel(wheel, local_version(Version("1.2.3"), "factory", 2), tmp_path / "out")
    assert out.name == "demo_pkg-1.2.3+factory.2-py3-none-any.whl"
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert "demo_pkg-1.2.3+factory.2.dist-info/METADATA" in names and not any("1.2.3.dist-info" in n for n in names)
        assert "Version: 1.2.3+factory.2\n" in zf.read("demo_pkg-1.2.3+factory.2.dist-info/METADATA").decode()
        record = zf.read("demo_pkg-1.2.3+factory.2.dist-info/RECORD").decode()
        for line in record.splitlines()[:-1]:
            name, digest, size = line.split(",")
            data = zf.read(name)
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert int(size) == len(data)
    assert relabel(wheel, local_version(Version("1.2.3"), "factory", 2), tmp_path / "again").read_bytes() == \
        out.read_bytes()  # deterministic


@pytest.mark.container
def test_a_remediated_build_is_published_with_a_local_label_that_pins_still_select(config, builder_image, tmp_path):
    patches = config.recipes_dir / "patches" / "fixture-pure"
    patches.mkdir(parents=True)
    (patches / "CVE-2026-0001.patch").write_text(FIX)
    (config.recipes_dir / "fixture-pure.toml").write_text(
        '[[override]]\nversions = "==1.0.0"\npatches = ["CVE-2026-0001.patch"]\nremediation = 1\n')
    record = run(parse_request("fixture-pure==1.0.0"), config)
    assert record.status == "built", f"{record.failure_class}: {record.reason}\n{record.log_tail}"
    assert record.version == "1.0.0+factory.1"
    assert record.published == ("fixture_pure-1.0.0+factory.1-py3-none-any.whl",)
    statement = statement_of(config.index_dir, record.published[0])
    (patch,) = [d for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"] if d["name"] == "patch"]
    assert patch["uri"] == "file:recipes/patches/fixture-pure/CVE-2026-0001.patch"
    assert patch["digest"]["sha256"] == hashlib.sha256(FIX.encode()).hexdigest()
    python = clean_venv(tmp_path / "venv")
    installed = pip_install(python, config.index_dir, "fixture-pure==1.0.0")  # a plain pin selects it
    assert installed.returncode == 0, installed.stderr
    done = subprocess.run([str(python), "-c", "import fixture_pure, importlib.metadata as m; "
                           "print(fixture_pure.greet('x'), m.version('fixture-pure'))"], capture_output=True, text=True)
    assert done.stdout.strip() == "hello (fixed), x 1.0.0+factory.1", done.stderr
    assert run(parse_request("fixture-pure==1.0.0"), config).published == ()  # in the index already
