"""The import gate: each compiled module of a wheel is imported on its target before publishing."""

import zipfile

import pytest
from conftest import assert_not_published

from factory.failures import BuildFailure
from factory.pipeline import bootstrap
from factory.pipeline.imports import Result, extension_modules, judge
from factory.pipeline.request import parse_request
from factory.pipeline.run import run
from factory.pipeline.rundeps import RuntimeDependencies, applicable
from factory.targets import Target

X311 = Target("x86_64", "3.11")
NO_DEPS = RuntimeDependencies((), None)


def test_extension_modules_are_named_by_their_dotted_path(tmp_path):
    wheel = tmp_path / "demo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in ("demo/__init__.py", "demo/_speedups.cpython-311-x86_64-linux-gnu.so", "demo/sub/_c.abi3.so",
                     "top.cpython-311-x86_64-linux-gnu.so", "plain.so", "demo.libs/libyaml-0-1a2b3c.so.2.0.9",
                     "demo.libs/libfoo.so", "demo-1.0.data/purelib/x.so", "demo-1.0.dist-info/RECORD",
                     "not-a-module/x.so"):
            zf.writestr(name, b"")
    assert extension_modules(wheel) == ("demo._speedups", "demo.sub._c", "plain", "top")


def test_only_a_module_missing_from_the_wheel_and_its_requirements_is_a_check_skipped():
    tops = frozenset({"demo"})
    ok = Result("demo._a", "ok")
    optional = Result("demo._tk", "import", "ModuleNotFoundError: No module named 'tkinter'", "tkinter")
    checked = judge([ok, optional], tops, NO_DEPS, X311)
    assert (checked.loaded, checked.imported) == (("demo._a", "demo._tk"), ("demo._a",))
    assert [str(s) for s in checked.skipped] == [
        "import of demo._tk not checked: it needs tkinter, which is neither in the wheel nor installed by its "
        "requirements (an optional module, or one only its tests need)"]
    unavailable = RuntimeDependencies(("numpy>=1.22",), None, "numpy 1.22.0 has no wheel for cp311-x86_64")
    (skipped,) = judge([optional], tops, unavailable, X311).skipped
    assert "could not be offered to the test (numpy 1.22.0 has no wheel for cp311-x86_64)" in str(skipped)
    failing = [
        (Result("demo._b", "load", "undefined symbol: foo"), "demo._b does not load on cp311-x86_64: undefined symbol"),
        (Result("demo._c", "import", "ModuleNotFoundError: No module named 'demo._d'", "demo._d"),
         "demo._c does not import"),  # the wheel's own module is missing: broken
        (Result("demo._e", "import", "ModuleNotFoundError: No module named 'numpy.core'", "numpy.core", True),
         "demo._e does not import"),  # an installed requirement lacks it: broken against it
        (Result("demo._f", "import", "ImportError: broken"), "demo._f does not import on cp311-x86_64: ImportError"),
    ]
    for result, words in failing:
        with pytest.raises(BuildFailure, match=words.replace(".", r"\.")) as raised:
            judge([ok, result], tops, NO_DEPS, X311)
        assert raised.value.failure_class == "import"


def test_the_runtime_requirements_of_a_target_and_the_ones_never_fetched():
    wanted, refused = applicable(["numpy>=1.22", "tzdata; sys_platform == 'win32'", "pytest; extra == 'test'",
                                  "typing-extensions; python_version < '3.12'", "evil @ http://127.0.0.1:9/x.whl"],
                                 X311)
    assert wanted == ["numpy>=1.22", 'typing-extensions; python_version < "3.12"']
    assert refused == ["evil @ http://127.0.0.1:9/x.whl"]


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


@pytest.mark.container
def test_good_modules_that_need_what_the_wheel_lacks_pass_and_name_what_was_not_checked(config, builder_image):
    """A runtime dependency is installed first (the upstream's wheel, offered read-only: the
    container has no network), so the module needing it is imported for real; a module needing
    an optional part of the standard library, or a test-only dependency, loads but its import is
    a check skipped, naming the module."""
    record = run(parse_request("fixture-gate==1.0.0"), config)
    assert record.status == "built", f"{record.failure_class}: {record.reason}\n{record.log_tail}"
    (outcome,) = record.targets
    assert [s.split(",")[0] for s in outcome.skipped_checks] == [
        "import of fixture_gate._tk not checked: it needs tkinter",
        "import of fixture_gate.tests._helper not checked: it needs fixture_no_such_test_tool"]
    assert all("neither in the wheel nor installed by its requirements" in s for s in outcome.skipped_checks)
    # fixture_gate._needsdep was imported with fixture-tool installed: it is not among the skipped.


@pytest.mark.container
def test_a_broken_module_behind_a_missing_optional_module_still_fails(config, builder_image):
    """Its package's import fails for the optional module first; loading the shared object
    itself shows that it cannot be imported anywhere."""
    record = run(parse_request("fixture-gate-hidden==1.0.0"), config)
    assert (record.status, record.failure_class) == ("failed", "import"), record.reason
    assert record.reason == ("cp311-x86_64: fixture_gate_hidden._speedups does not load on cp311-x86_64: "
                             "no PyInit__speedups in fixture_gate_hidden/_speedups.cpython-311-x86_64-linux-gnu.so")
    assert_not_published(config, "fixture-gate-hidden")


@pytest.mark.container
def test_a_real_project_whose_test_helpers_need_a_test_only_dependency_is_published(config, builder_image):
    """greenlet (a C++ coroutine library) ships compiled helpers under greenlet/tests, whose
    package imports psutil (its `test` extra): those imports are checked skipped, its own
    extension is imported, and the wheel is published."""
    node = bootstrap.build(parse_request("greenlet==3.5.6"), config)
    assert node.ok, f"{node.record.failure_class}: {node.record.reason}\n{node.record.log_tail}"
    (outcome,) = node.record.targets
    assert sorted(s.split(",")[0] for s in outcome.skipped_checks) == [
        "import of greenlet.tests._test_extension not checked: it needs psutil",
        "import of greenlet.tests._test_extension_cpp not checked: it needs psutil"]
    assert outcome.wheel and outcome.wheel in node.record.published
