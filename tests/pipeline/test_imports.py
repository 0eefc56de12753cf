"""The import gate: each compiled module of a wheel is imported on its target before publishing."""

import zipfile

import pytest
from conftest import assert_not_published

from factory.pipeline.imports import extension_modules
from factory.pipeline.request import parse_request
from factory.pipeline.run import run


def test_extension_modules_are_named_by_their_dotted_path(tmp_path):
    wheel = tmp_path / "demo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in ("demo/__init__.py", "demo/_speedups.cpython-311-x86_64-linux-gnu.so", "demo/sub/_c.abi3.so",
                     "top.cpython-311-x86_64-linux-gnu.so", "plain.so", "demo.libs/libyaml-0-1a2b3c.so.2.0.9",
                     "demo.libs/libfoo.so", "demo-1.0.data/purelib/x.so", "demo-1.0.dist-info/RECORD",
                     "not-a-module/x.so"):
            zf.writestr(name, b"")
    assert extension_modules(wheel) == ("demo._speedups", "demo.sub._c", "plain", "top")


@pytest.mark.container
def test_a_broken_extension_is_not_published_although_its_package_falls_back(config, builder_image):
    record = run(parse_request("fixture-fallback==1.0.0"), config)
    assert (record.status, record.failure_class) == ("failed", "import"), record.reason
    assert record.reason.startswith("cp311-x86_64: fixture_fallback._speedups does not import on cp311-x86_64: ")
    assert "broken on purpose" in record.reason and "ImportError" in record.log_tail
    assert_not_published(config, "fixture-fallback")


@pytest.mark.container
def test_every_compiled_module_is_imported_before_publishing(config, builder_image):
    record = run(parse_request("fixture-cext==1.0.0"), config)
    assert record.status == "built", f"{record.failure_class}: {record.reason}"
    assert record.durations["imports"] > 0
