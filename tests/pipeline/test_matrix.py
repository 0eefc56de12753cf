"""The build matrix and recipes with real containers: abi3, one failing target among others,
the gcc fallback, system packages, the smoke-test gate, patches and pinned sources."""

import os
import subprocess
import sys
import zipfile

import pytest
from conftest import assert_not_published, clean_venv, pip_install
from support.sdists import make_sdist

from factory.index.manifest import Manifest
from factory.pipeline.request import parse_request
from factory.pipeline.run import run

pytestmark = pytest.mark.container


@pytest.fixture(autouse=True)
def _image(builder_image):
    """Every test here needs the x86_64 builder image."""


def recipe(cfg, project, text):
    (cfg.recipes_dir / f"{project}.toml").write_text(text)


def by_target(record):
    return {str(t.target): t for t in record.targets}


def test_abi3_builds_once_per_architecture(config):
    cfg = config.replace(pythons=("3.11", "3.13"))
    recipe(cfg, "fixture-abi3", '[test]\ncommand = "python -c \'import fixture_abi3; assert fixture_abi3.twice(21) == 42\'"\n')
    record = run(parse_request("fixture-abi3==1.0.0"), cfg)
    assert record.status == "built", record.reason
    (wheel,) = record.wheels
    assert "-cp311-abi3-" in wheel.filename and "manylinux_2_28_x86_64" in wheel.filename
    targets = by_target(record)
    assert targets["cp311-x86_64"].wheel == targets["cp313-x86_64"].wheel == wheel.filename
    assert record.cibuildwheel_config.count("[tool.cibuildwheel]") == 1  # one container for both Pythons
    assert 'build = "cp311-* cp313-*"' in record.cibuildwheel_config
    assert record.durations["test"] > 0  # smoke-tested on each CPython


def test_an_abi3_wheel_failing_its_test_on_one_python_is_published_for_none(config):
    cfg = config.replace(pythons=("3.11", "3.13"))
    recipe(cfg, "fixture-abi3", '[test]\ncommand = "python -c \'import sys; assert sys.version_info < (3, 13)\'"\n')
    record = run(parse_request("fixture-abi3==1.0.0"), cfg)
    targets = by_target(record)
    assert record.status == "failed" and record.published == ()
    assert targets["cp311-x86_64"].failure_class == targets["cp313-x86_64"].failure_class == "test"
    assert_not_published(cfg, "fixture-abi3")


def test_one_failing_target_does_not_lose_the_others(config):
    cfg = config.replace(pythons=("3.11", "3.13"))
    record = run(parse_request("fixture-no313==1.0.0"), cfg)
    assert record.status == "partial"
    targets = by_target(record)
    assert targets["cp311-x86_64"].status == "built"
    assert targets["cp313-x86_64"].status == "failed"
    assert targets["cp313-x86_64"].failure_class == "compile"
    assert "does not support CPython 3.13" in targets["cp313-x86_64"].reason
    assert targets["cp313-x86_64"].log_tail
    assert record.failure_class == "compile" and record.reason.startswith("cp313-x86_64: ")
    assert record.published == (targets["cp311-x86_64"].wheel, "fixture_no313-1.0.0.tar.gz")
    # Building again builds only what is missing: cp313, which fails again.
    again = run(parse_request("fixture-no313==1.0.0"), cfg)
    assert by_target(again)["cp311-x86_64"].wheel == targets["cp311-x86_64"].wheel
    assert 'build = "cp313-*"' in again.cibuildwheel_config and "cp311-*" not in again.cibuildwheel_config


def test_when_zig_cannot_compile_gcc_is_tried_and_the_gate_decides(config):
    recipe(config, "fixture-gnuc", '[test]\ncommand = "python -c \'import fixture_gnuc; assert fixture_gnuc.square(7) == 49\'"\n')
    record = run(parse_request("fixture-gnuc==1.0.0"), config)
    assert record.status == "built", record.reason
    assert record.cibuildwheel_config.count("[tool.cibuildwheel]") == 2
    assert '"CC" = "gcc"' in record.cibuildwheel_config.split("[tool.cibuildwheel]")[2]
    log = (config.records_dir / "fixture-gnuc" / f"{record.id}.log").read_text()
    assert "function definition is not allowed here" in log  # clang's refusal, first


def test_a_missing_header_is_found_in_debian_and_installed_without_a_recipe(config):
    record = run(parse_request("fixture-needsyaml==1.0.0"), config)
    assert record.status == "built", f"{record.failure_class}: {record.reason}"
    (package,) = record.system_packages
    assert package.name == "libyaml-dev" and "/usr/include/yaml.h is in libyaml-dev" in package.why


def test_a_header_no_debian_package_ships_fails_naming_what_was_looked_for(config):
    record = run(parse_request("fixture-nosuchheader==1.0.0"), config)
    assert (record.status, record.failure_class) == ("failed", "missing-system-library"), record.reason
    assert "header factory_no_such_library.h not found" in record.reason
    assert "fatal error: 'factory_no_such_library.h' file not found" in record.reason  # the line that said so
    assert "no Debian package in bookworm ships it" in record.reason
    assert_not_published(config, "fixture-nosuchheader")


def test_recipe_system_packages_are_installed_and_grafted(config, tmp_path):
    recipe(config, "fixture-needsyaml", 'system-packages = ["libyaml-dev"]\n[test]\nimports = ["fixture_needsyaml"]\n'
           'command = "python -c \'import fixture_needsyaml; print(fixture_needsyaml.libyaml_version())\'"\n')
    record = run(parse_request("fixture-needsyaml==1.0.0"), config)
    assert record.status == "built", f"{record.reason}\n{record.log_tail}"
    stored = next(config.index_dir.rglob(record.wheels[0].filename))
    with zipfile.ZipFile(stored) as zf:
        assert [n for n in zf.namelist() if "libyaml" in n]  # grafted by auditwheel
    # The smoke test ran in a clean container, without libyaml-dev; so does this host's venv.
    python = clean_venv(tmp_path / "venv")
    assert pip_install(python, config.index_dir, "fixture-needsyaml").returncode == 0
    version = subprocess.run([str(python), "-c", "import fixture_needsyaml as m; print(m.libyaml_version())"],
                             capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip().startswith("0."), version.stderr


def test_a_failing_smoke_test_keeps_the_wheel_out_of_the_index(config):
    recipe(config, "fixture-cext", '[test]\nimports = ["fixture_cext", "fixture_cext_missing"]\n')
    record = run(parse_request("fixture-cext==1.0.0"), config)
    assert record.status == "failed" and record.failure_class == "test"
    assert "import fixture_cext_missing" in record.reason and "ModuleNotFoundError" in record.reason
    assert record.published == ()
    assert_not_published(config, "fixture-cext")


def test_patches_and_a_pinned_source_go_into_the_build(config, local_index, tmp_path):
    # fixture-wheelonly has no sdist upstream; its recipe pins one (served elsewhere) and patches it.
    pinned = make_sdist("fixture-pure", "1.0.0", tmp_path, name="fixture-wheelonly")
    served = local_index.add_file("pinned-sources", pinned)
    patches = config.recipes_dir / "patches" / "fixture-wheelonly"
    patches.mkdir(parents=True)
    (patches / "0001-greet.patch").write_text(
        "--- a/src/fixture_pure/__init__.py\n+++ b/src/fixture_pure/__init__.py\n@@ -1,2 +1,2 @@\n"
        " def greet(name: str) -> str:\n-    return f\"hello, {name}\"\n+    return f\"patched, {name}\"\n")
    url = local_index.url.replace("/simple/", "/files/") + "fixture_wheelonly-{version}.tar.gz"
    recipe(config, "fixture-wheelonly",
           f'patches = ["0001-greet.patch"]\n[[override]]\nversions = "==1.0.0"\n'
           f'source = {{ url = "{url}", sha256 = "{served.declared_sha256}" }}\n')
    record = run(parse_request("fixture-wheelonly==1.0.0"), config)
    assert record.status == "built", f"{record.failure_class}: {record.reason}"
    assert record.source.url.endswith("/files/fixture_wheelonly-1.0.0.tar.gz")
    python = clean_venv(tmp_path / "venv")
    assert pip_install(python, config.index_dir, "fixture-wheelonly").returncode == 0
    out = subprocess.run([str(python), "-c", "import fixture_pure; print(fixture_pure.greet('x'))"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "patched, x"
    with Manifest(config.index_dir / "manifest.sqlite3") as manifest:
        assert [e.filename for e in manifest.files("fixture-wheelonly")] == ["fixture_wheelonly-1.0.0-py3-none-any.whl"]


def test_skipped_targets_are_recorded_with_their_reason(config):
    cfg = config.replace(archs=("x86_64", "aarch64"))
    recipe(cfg, "fixture-pure", 'skip = [{ arch = "aarch64", reason = "not needed here" }]\n')
    record = run(parse_request("fixture-pure==1.0.0"), cfg)
    assert record.status == "built"
    targets = by_target(record)
    assert (targets["cp311-aarch64"].status, targets["cp311-aarch64"].reason) == ("skipped", "not needed here")
    assert targets["cp311-x86_64"].status == "built"


def test_narrowing_on_the_command_line(config):
    env = {**os.environ, "FACTORY_UPSTREAM": config.upstream, "FACTORY_INDEX_DIR": str(config.index_dir),
           "FACTORY_STATE_DIR": str(config.state_dir), "FACTORY_RECIPES_DIR": str(config.recipes_dir)}
    done = subprocess.run([sys.executable, "-m", "factory", "build", "--arch", "x86_64", "--python", "3.11",
                           "--python", "3.13", "fixture-no313==1.0.0"], capture_output=True, text=True, env=env)
    assert done.returncode == 1  # partial
    assert "partial" in done.stdout and "cp311-x86_64" in done.stdout and "cp313-x86_64" in done.stdout
    assert "aarch64" not in done.stdout
    bad = subprocess.run([sys.executable, "-m", "factory", "build", "--python", "3.12", "six"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "no Debian suite provides CPython '3.12'" in bad.stderr
