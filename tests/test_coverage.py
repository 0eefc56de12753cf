"""`factory coverage FILE`: which pins of a requirements file, a uv.lock or a pylock.toml the index
serves, per target, and what the queue does about the rest; `--queue` asks for what nobody asked.
The judging is a pure function, tested on its own; the files are made by the real uv against a
local upstream, and the command runs as a user runs it."""

import json
import os
import subprocess
import sys

import pytest
from support.index_server import LocalIndex
from support.installers import UV, uv_env
from support.wheels import make_wheel

from factory.coverage import Cell, judge
from factory.failures import FailureClass
from factory.index.distfile import inspect_wheel
from factory.index.manifest import FileEntry
from factory.index.publish import publish
from factory.lockfiles.pins import Locked, read
from factory.pipeline.record import BuildStatus
from factory.queue.ledger import Demand, Item, Ledger, State
from factory.targets import Target

X86_311, X86_313, ARM_311 = Target("x86_64", "3.11"), Target("x86_64", "3.13"), Target("aarch64", "3.11")


def entry(filename, requires_python=None):
    return FileEntry(filename, "demo", "1.0", "0" * 64, 1, requires_python, None, "", None, filename)


def item(state, failure_class=None, reason=None):
    return Item(1, "demo", "1.0", State(state), 0.0, 1, 1, 0.0, 0.0, 0, 0.0, None, None, failure_class, reason, None,
                None, 0.0)


def pin(marker=None):
    from packaging.markers import Marker

    return Locked("demo", "1.0", Marker(marker) if marker else None, "test")


def test_a_pure_wheel_serves_every_target_and_a_platform_wheel_only_its_own():
    assert {judge(pin(), t, [entry("demo-1.0-py3-none-any.whl")], None) for t in (X86_311, ARM_311)} == {Cell.SERVED}
    cp311 = [entry("demo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl")]
    assert judge(pin(), X86_311, cp311, None) is Cell.SERVED
    assert judge(pin(), X86_313, cp311, None) is Cell.LACKING
    assert judge(pin(), ARM_311, cp311, None) is Cell.LACKING
    abi3 = [entry("demo-1.0-cp39-abi3-manylinux_2_28_aarch64.whl")]
    assert judge(pin(), ARM_311, abi3, None) is Cell.SERVED and judge(pin(), X86_311, abi3, None) is Cell.LACKING
    # An sdist alone serves nobody a wheel.
    assert judge(pin(), X86_311, [entry("demo-1.0.tar.gz")], None) is Cell.LACKING


def test_markers_and_requires_python_say_where_a_pin_is_not_wanted():
    assert judge(pin("platform_machine == 'aarch64'"), X86_311, [], None) is Cell.NOT_NEEDED
    assert judge(pin("platform_machine == 'aarch64'"), ARM_311, [], None) is Cell.LACKING
    assert judge(pin("python_version >= '3.12'"), X86_311, [], None) is Cell.NOT_NEEDED
    assert judge(pin(), X86_311, [entry("demo-1.0.tar.gz", ">=3.12")], None) is Cell.EXCLUDED
    assert judge(pin(), X86_313, [entry("demo-1.0.tar.gz", ">=3.12")], None) is Cell.LACKING


def test_the_queue_says_what_is_being_done_about_the_rest():
    for state in ("queued", "building", "waiting", "failed", "refused"):
        assert judge(pin(), X86_311, [], item(state)) is Cell(state)
    # Built, yet this target has no wheel (a CPython added since): lacking, so --queue asks again.
    assert judge(pin(), X86_311, [], item("built")) is Cell.LACKING
    # What the index serves wins over a queue entry.
    assert judge(pin(), X86_311, [entry("demo-1.0-py3-none-any.whl")], item("failed")) is Cell.SERVED


def test_requirements_files_pins_includes_markers_and_what_is_not_measured(tmp_path):
    (tmp_path / "base.txt").write_text("shared==2.0\n")
    (tmp_path / "requirements.txt").write_text(
        "--index-url http://127.0.0.1:9/simple/\n"
        "# a comment\n"
        "-r base.txt\n"
        "Demo_Pkg==1.0 \\\n    --hash=sha256:" + "a" * 64 + " \\\n    --hash=sha256:" + "b" * 64 + "\n"
        "armonly==3.1 ; platform_machine == 'aarch64'  # via app\n"
        "requests>=2\n"
        "-e ./local\n"
        "-r requirements.txt\n")  # a loop of includes is read once
    pins = read(tmp_path / "requirements.txt")
    assert [(p.name, p.version, str(p.marker) if p.marker else None, p.where) for p in pins.pins] == [
        ("shared", "2.0", None, "base.txt:1"), ("demo-pkg", "1.0", None, "requirements.txt:4"),
        ("armonly", "3.1", 'platform_machine == "aarch64"', "requirements.txt:7")]
    assert pins.unpinned == ("requests>=2",)


@pytest.mark.parametrize(("name", "text", "says"), [
    ("uv.lock", "version = 1\n[[package]\n", "not a TOML file"),
    ("pylock.toml", 'lock-version = "9.0"\ncreated-by = "x"\n[[packages]]\nname = "a"\n', "not a valid PEP 751"),
    ("requirements.txt", None, "cannot read"),
])
def test_a_file_that_is_not_what_its_name_says_is_a_clear_error(tmp_path, name, text, says):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    done = factory(tmp_path / "cfg", "coverage", str(path))
    assert done.returncode == 2 and str(path) in done.stderr and says in done.stderr, done.stderr


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """An application locked against an upstream three ways (uv pip compile, uv lock, uv export
    to pylock.toml), and an index that serves some of it."""
    root = tmp_path_factory.mktemp("coverage")
    index = root / "cfg" / "index"
    publish(index, [inspect_wheel(make_wheel(root / "o", "demo-pure", "1.0", body="ours")),
                    inspect_wheel(make_wheel(root / "o", "demo-cext", "1.0", body="ours",
                                             tag="cp311-cp311-manylinux_2_28_x86_64"))], "")
    with LocalIndex() as upstream:
        for name in ("demo-pure", "demo-cext", "demo-other", "demo-arm"):
            upstream.add_file(name, make_wheel(root / "u", name, "1.0", body="upstream"))
        path = root / "app"
        path.mkdir()
        (path / "pyproject.toml").write_text(
            '[project]\nname = "app"\nversion = "0"\nrequires-python = ">=3.11"\n'
            'dependencies = ["demo-pure", "demo-cext", "demo-other", "demo-arm; platform_machine == \'aarch64\'"]\n')
        (path / "requirements.in").write_text("-e .\n")
        for args in (["lock"], ["export", "--format", "pylock.toml", "-o", "pylock.toml"],
                     ["pip", "compile", "--generate-hashes", "--universal", "-o", "requirements.txt", "requirements.in"]):
            done = subprocess.run([UV, *args, "--no-config", "--default-index" if args[0] != "pip" else "--index-url",
                                   upstream.url], capture_output=True, text=True, env=uv_env(), cwd=path)
            assert done.returncode == 0, done.stderr
    return root / "cfg", path


def factory(cfg, *args):
    env = {**os.environ, "FACTORY_INDEX_DIR": str(cfg / "index"), "FACTORY_STATE_DIR": str(cfg / "state"),
           "FACTORY_UPSTREAM": "http://127.0.0.1:9/simple/", "FACTORY_ARCHS": "x86_64,aarch64",
           "FACTORY_PYTHONS": "3.11,3.13"}
    return subprocess.run([sys.executable, "-m", "factory", *args], capture_output=True, text=True, env=env)


def coverage(cfg, path, *args):
    done = factory(cfg, "coverage", "--json", str(path), *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def cells(report):
    return {p["name"]: p["targets"] for p in report["pins"]}


@pytest.mark.parametrize("lock", ["requirements.txt", "uv.lock", "pylock.toml"])
def test_what_a_lock_file_pins_is_served_lacking_or_queued(app, lock, tmp_path):
    cfg, project = app
    state = tmp_path / "cfg"
    state.mkdir()
    (state / "index").symlink_to(cfg / "index")  # the same index, a queue of this test's own
    report = coverage(state, project / lock)
    found = cells(report)
    assert set(found) == {"demo-pure", "demo-cext", "demo-other", "demo-arm"}
    assert set(found["demo-pure"].values()) == {"served"}
    assert found["demo-cext"] == {"cp311-x86_64": "served", "cp313-x86_64": "lacking", "cp311-aarch64": "lacking",
                                  "cp313-aarch64": "lacking"}
    assert set(found["demo-other"].values()) == {"lacking"}
    if lock != "uv.lock":  # uv.lock keeps markers on the edges, not on the package: needed everywhere
        assert found["demo-arm"] == {"cp311-x86_64": "not-needed", "cp313-x86_64": "not-needed",
                                     "cp311-aarch64": "lacking", "cp313-aarch64": "lacking"}
    summary = report["summary"]
    assert (summary["pins"], summary["served"], summary["partly"], summary["lacking"]) == (4, 1, 1, 3)

    # --queue: what nobody asked for becomes build requests, their origin the file's name.
    queued = coverage(state, project / lock, "--queue")
    assert queued["summary"]["queued-now"] == 3
    assert set(cells(queued)["demo-other"].values()) == {"queued"}
    assert cells(queued)["demo-cext"]["cp311-x86_64"] == "served"
    with Ledger(str(state / "state" / "queue.sqlite3")) as ledger:
        requests = {i.project: i for i in ledger.all()}
        targets = dict(((p, t), n) for p, _, t, n in ledger.missed_targets())
    assert set(requests) == {"demo-cext", "demo-other", "demo-arm"}
    assert {i.origin for i in requests.values()} == {lock} and {i.version for i in requests.values()} == {"1.0"}
    assert ("demo-cext", "cp313-aarch64") in targets and ("demo-cext", "cp311-x86_64") not in targets
    # Asked again: nothing new.
    assert coverage(state, project / lock, "--queue")["summary"]["queued-now"] == 0

    # A failed build says why.
    with Ledger(str(state / "state" / "queue.sqlite3")) as ledger:
        while (claimed := ledger.claim("w")) is not None:
            ledger.finish(claimed, "w", BuildStatus.FAILED, FailureClass.COMPILE, "demo.c:1: error: boom")
    failed = {p["name"]: p for p in coverage(state, project / lock)["pins"]}
    assert failed["demo-other"]["status"] == "failed" and "compile: demo.c:1: error: boom" in failed["demo-other"]["detail"]
    text = factory(state, "coverage", str(project / lock))
    assert text.returncode == 0 and "1 of 4 pins served on every target" in text.stdout, text.stdout


def test_demands_are_what_nobody_asked_for():
    from factory.coverage import Coverage, PinCoverage, demands

    report = Coverage("r.txt", "requirements", ("cp311-x86_64", "cp311-aarch64"), (
        PinCoverage("a", "1", {"cp311-x86_64": Cell.SERVED, "cp311-aarch64": Cell.LACKING}, ""),
        PinCoverage("b", "1", {"cp311-x86_64": Cell.QUEUED, "cp311-aarch64": Cell.QUEUED}, ""),
        PinCoverage("c", "1", {"cp311-x86_64": Cell.FAILED, "cp311-aarch64": Cell.FAILED}, "compile: x")), ())
    assert demands(report, 5.0) == [Demand("a", "1", 1, frozenset(), 5.0, 5.0, {"cp311-aarch64": 1})]
