"""The real pipeline end to end: podman, cibuildwheel, zig, auditwheel, the index, pip."""

import json
import math
import os
import subprocess
import sys
import zipfile

import pytest
from conftest import assert_not_published, clean_venv, factory_env, pip_install

from factory.index.manifest import Manifest
from factory.pipeline import bootstrap
from factory.pipeline.request import parse_request
from factory.pipeline.run import run
from factory.targets import MAX_GLIBC, glibc_of

pytestmark = pytest.mark.container


@pytest.fixture(autouse=True)
def _image(builder_image):
    """Every test here needs the builder image."""


def build_ok(cfg, spec):
    record = run(parse_request(spec), cfg)
    assert record.status == "built", f"{record.failure_class}: {record.reason}\n{record.log_tail}"
    assert record.published
    return record


def run_in(python, code):
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_pure_project_builds_one_universal_wheel(config, tmp_path):
    record = build_ok(config, "fixture-pure==1.0.0")
    # The wheel, and beside it the sdist it was built from.
    assert record.published == ("fixture_pure-1.0.0-py3-none-any.whl", "fixture_pure-1.0.0.tar.gz")
    assert record.wheels[0].policy == "pure"
    python = clean_venv(tmp_path / "venv")
    assert pip_install(python, config.index_dir, "fixture-pure==1.0.0").returncode == 0
    assert run_in(python, "import fixture_pure; print(fixture_pure.greet('factory'))") == "hello, factory"


def test_c_extension_calling_libm_and_stat_meets_manylinux_2_28(config, tmp_path):
    record = build_ok(config, "fixture-cext==1.0.0")
    (wheel,) = record.wheels
    assert wheel.filename.startswith("fixture_cext-1.0.0-cp311-cp311-")
    assert "manylinux_2_28_x86_64" in wheel.filename
    assert glibc_of(wheel.policy) <= MAX_GLIBC
    # What the record says is what the index has, byte for byte.
    with Manifest(config.index_dir / "manifest.sqlite3") as manifest:
        entries = {e.filename: e for e in manifest.files("fixture-cext")}
    assert set(entries) == {wheel.filename, "fixture_cext-1.0.0.tar.gz"}  # the wheel beside its sdist
    assert entries[wheel.filename].sha256 == wheel.sha256
    assert entries["fixture_cext-1.0.0.tar.gz"].sha256 == record.source.sha256
    assert record.images[0].arch == "x86_64" and record.images[0].id
    assert 'repair-wheel-command = "factory-repair' in record.cibuildwheel_config
    assert set(record.durations) >= {"resolve", "fetch", "unpack", "build", "repair", "publish"}
    # The sdist's own [tool.cibuildwheel] (a failing before-all, CC=gcc) was not obeyed.
    log = (config.records_dir / "fixture-cext" / f"{record.id}.log").read_text()
    assert "PROJECT-HOOK-RAN" not in log and "zig-cc" in log

    python = clean_venv(tmp_path / "venv")
    done = pip_install(python, config.index_dir, "fixture-cext==1.0.0")
    assert done.returncode == 0, done.stderr
    value = float(run_in(python, "import fixture_cext; print(fixture_cext.curve(2.0))"))
    assert math.isclose(value, math.exp(2.0) + math.log(3.0) + 8.0)
    size = run_in(python, f"import fixture_cext; print(fixture_cext.file_size({sys.executable!r}))")
    assert int(size) == os.path.getsize(sys.executable)


def test_cpp_extension_links_its_runtime_statically(config, tmp_path):
    record = build_ok(config, "fixture-cpp==1.0.0")
    (wheel,) = record.wheels
    assert "manylinux_2_28_x86_64" in wheel.filename
    stored = next(config.index_dir.rglob(wheel.filename))
    with zipfile.ZipFile(stored) as zf:
        assert not [n for n in zf.namelist() if "libstdc++" in n or "libc++" in n]  # nothing grafted
    python = clean_venv(tmp_path / "venv")
    assert pip_install(python, config.index_dir, "fixture-cpp==1.0.0").returncode == 0
    assert run_in(python, "import fixture_cpp; print(fixture_cpp.join_digits(4))") == "0,1,2,3,"


def test_a_wheel_needing_a_newer_glibc_fails_the_policy_gate(config):
    record = run(parse_request("fixture-newglibc==1.0.0"), config)
    assert record.status == "failed"
    assert record.failure_class == "policy", record.reason
    assert "GLIBC_2.29" in record.reason and "libm.so.6" in record.reason
    assert any(f"{symbol}@GLIBC_2.29" in record.reason for symbol in ("exp", "log", "pow"))
    assert "FACTORY-POLICY" in record.log_tail
    assert_not_published(config, "fixture-newglibc")


def test_the_command_line(config, tmp_path):
    env = {**os.environ, "FACTORY_UPSTREAM": config.upstream, "FACTORY_INDEX_DIR": str(config.index_dir),
           "FACTORY_STATE_DIR": str(config.state_dir), "FACTORY_RECIPES_DIR": str(config.recipes_dir),
           "FACTORY_ARCHS": "x86_64", "FACTORY_PYTHONS": "3.11"}
    factory = [sys.executable, "-m", "factory"]
    done = subprocess.run([*factory, "build", "fixture-pure==1.0.0"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "built fixture-pure==1.0.0" in done.stdout
    assert "cp311-x86_64   built   fixture_pure-1.0.0-py3-none-any.whl" in done.stdout
    again = subprocess.run([*factory, "build", "fixture-pure==1.0.0"], capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "in the index already" in again.stderr
    failed = subprocess.run([*factory, "build", "fixture-wheelonly==1.0.0"], capture_output=True, text=True, env=env)
    assert failed.returncode == 1 and "no-source" in failed.stdout
    bad = subprocess.run([*factory, "build", "six>=1"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "exact version" in bad.stderr


def test_the_host_gate_trusts_no_tag_the_container_wrote(config, tmp_path):
    from packaging.version import Version

    from factory.failures import BuildFailure
    from factory.pipeline.repair import check

    record = build_ok(config, "fixture-cext==1.0.0")
    stored = next(config.index_dir.rglob(record.wheels[0].filename))
    assert check(stored, "fixture-cext", Version("1.0.0"), "x86_64").policy == record.wheels[0].policy
    other_arch = tmp_path / "fixture_cext-1.0.0-cp311-cp311-manylinux_2_28_aarch64.whl"  # x86_64 code inside
    other_arch.write_bytes(stored.read_bytes())
    with pytest.raises(BuildFailure, match="aarch64"):  # auditwheel itself refuses the mismatch
        check(other_arch, "fixture-cext", Version("1.0.0"))
    with pytest.raises(BuildFailure, match="holds x86_64 code, built for aarch64"):
        check(stored, "fixture-cext", Version("1.0.0"), "aarch64")
    pure = tmp_path / "fixture_cext-1.0.0-py3-none-any.whl"  # compiled code under a pure tag
    pure.write_bytes(stored.read_bytes())
    with pytest.raises(BuildFailure, match="tagged pure but carries compiled code"):
        check(pure, "fixture-cext", Version("1.0.0"))


def test_cpython_314_gets_compiled_wheels_and_status_names_the_pythons(config, tmp_path):
    # 3.14 comes from Debian sid; its build tools are resolved no older than 3.14 itself.
    cfg = config.replace(pythons=("3.11", "3.14"))
    node = bootstrap.build(parse_request("fixture-cext==1.0.0"), cfg)
    assert node.ok, f"{node.record.failure_class}: {node.record.reason}\n{node.record.log_tail}"
    targets = {str(t.target): t.status for t in node.record.targets}
    assert targets == {"cp311-x86_64": "built", "cp314-x86_64": "built"}  # each imported in its own container
    wheels = sorted(f for f in node.record.published if f.endswith(".whl"))
    assert [w.split("-")[2] for w in wheels] == ["cp311", "cp314"]
    assert all("manylinux_2_28_x86_64" in w for w in wheels)
    status = subprocess.run([sys.executable, "-m", "factory", "status", "--json"], capture_output=True, text=True,
                            env=factory_env(cfg))
    pythons = json.loads(status.stdout)["index"]["fixture-cext"]["pythons"]
    assert (pythons["3.11"], pythons["3.13"], pythons["3.14"]) == (["x86_64"], [], ["x86_64"])
