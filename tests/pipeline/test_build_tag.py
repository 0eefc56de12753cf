"""`wheel-build-tag`: every built wheel published with a wheel build tag (which pip and uv rank
above no build tag in a merged index), its WHEEL file and RECORD saying so, reproducibly."""

import zipfile

import pytest
from conftest import clean_venv, pip_install
from packaging.utils import parse_wheel_filename
from packaging.version import Version
from support.wheels import make_wheel

from factory import config as factory_config
from factory.failures import BuildFailure, ConfigError
from factory.index.distfile import inspect_wheel
from factory.pipeline.relabel import local_version, relabel
from factory.pipeline.request import parse_request
from factory.pipeline.run import run
from factory.rebuild_check import rebuild_check


def test_a_build_tag_changes_the_name_and_the_wheel_file_only(tmp_path):
    wheel = make_wheel(tmp_path / "in", "demo-pkg", "1.2.3", tag="cp311-cp311-manylinux_2_28_x86_64")
    out = relabel(wheel, Version("1.2.3"), tmp_path / "out", "1")
    assert out.name == "demo_pkg-1.2.3-1-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert parse_wheel_filename(out.name)[2] == (1, "")
    with zipfile.ZipFile(wheel) as before, zipfile.ZipFile(out) as after:
        assert before.namelist() == after.namelist()  # same members, same order
        assert after.read("demo_pkg-1.2.3.dist-info/WHEEL").decode().endswith("Build: 1\n")
        assert after.read("demo_pkg-1.2.3.dist-info/METADATA") == before.read("demo_pkg-1.2.3.dist-info/METADATA")
        record = after.read("demo_pkg-1.2.3.dist-info/RECORD").decode()
        assert record != before.read("demo_pkg-1.2.3.dist-info/RECORD").decode()
    assert inspect_wheel(out).version == "1.2.3"  # the publish gate accepts it
    assert relabel(wheel, Version("1.2.3"), tmp_path / "again", "1").read_bytes() == out.read_bytes()
    # With a remediation label too, and over a build tag the wheel had.
    tagged = make_wheel(tmp_path / "tagged", "demo-pkg", "1.2.3", build_tag="7")
    both = relabel(tagged, local_version(Version("1.2.3"), "factory", 1), tmp_path / "both", "2x")
    assert both.name == "demo_pkg-1.2.3+factory.1-2x-py3-none-any.whl"
    with zipfile.ZipFile(both) as zf:
        wheel_file = zf.read("demo_pkg-1.2.3+factory.1.dist-info/WHEEL").decode()
        assert "Build: 2x\n" in wheel_file and "Build: 7" not in wheel_file
    with pytest.raises(BuildFailure, match="not a wheel build tag"):
        relabel(wheel, Version("1.2.3"), tmp_path / "bad", "x-1")


def test_the_setting_must_be_a_build_tag():
    env = {"FACTORY_UPSTREAM": "http://127.0.0.1:9/simple/"}
    assert factory_config.load(None, {**env, "FACTORY_WHEEL_BUILD_TAG": "1factory"}).wheel_build_tag == "1factory"
    with pytest.raises(ConfigError, match="FACTORY_WHEEL_BUILD_TAG.*'factory' is not a wheel build tag"):
        factory_config.load(None, {**env, "FACTORY_WHEEL_BUILD_TAG": "factory"})


@pytest.mark.container
def test_a_build_with_a_build_tag_publishes_it_installs_and_rebuilds_identically(config, builder_image, tmp_path):
    config = config.replace(wheel_build_tag="1")
    record = run(parse_request("fixture-pure==1.0.0"), config)
    assert record.status == "built", f"{record.failure_class}: {record.reason}\n{record.log_tail}"
    wheels = [f for f in record.published if f.endswith(".whl")]
    assert wheels == ["fixture_pure-1.0.0-1-py3-none-any.whl"]  # beside the upstream sdist, as it was
    python = clean_venv(tmp_path / "venv")
    installed = pip_install(python, config.index_dir, "fixture-pure==1.0.0")
    assert installed.returncode == 0, installed.stderr
    report = rebuild_check(parse_request("fixture-pure==1.0.0"), config)
    assert report.identical and [w.filename for w in report.wheels] == wheels
