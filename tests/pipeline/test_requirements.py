"""Build requirements without a container: as of when they are resolved, the resolution itself
(uv against the tests' local index, which redirects to the real upstream), the recipe's changes
and their writing into the tree."""

import subprocess
import sys
import tomllib

from conftest import isolated_pip_env
from packaging.utils import canonicalize_name
from packaging.version import Version
from support.wheels import make_wheel

from factory.index.distfile import inspect_wheel
from factory.index.publish import publish
from factory.pipeline.buildenv import BuildEnvironment
from factory.pipeline.requirements import Pin, Resolver, constraints, cutoff, inputs, later, write_requires
from factory.recipes import BuildRequires
from factory.targets import every_target


def test_requirements_are_resolved_as_of_the_release_but_never_older_than_the_cpython_or_the_dependent():
    assert cutoff("2024-10-18T15:21:54.129138Z", "3.11") == "2024-10-18T15:21:55Z"  # inclusive, to the second
    assert cutoff("2021-01-07T10:00:00Z", "3.11") == "2022-10-24T00:00:01Z"  # 3.11's release
    assert cutoff("2021-01-07T10:00:00Z", "3.13") == "2024-10-07T00:00:01Z"  # 3.13's
    assert cutoff("2021-01-07T10:00:00Z", "3.11", floor="2025-06-01T00:00:00Z") == "2025-06-01T00:00:01Z"
    assert cutoff(None, "3.11", floor="2025-06-01T00:00:00Z") is None  # the upstream does not say: the newest
    assert later("2024-01-01T00:00:00Z", None) == "2024-01-01T00:00:00Z"
    assert later("2024-01-01T00:00:00Z", "2023-01-01T00:00:00.5Z") == "2024-01-01T00:00:00Z"


def test_the_resolution_is_the_newest_release_of_the_day_for_each_cpython(local_index, tmp_path):
    resolver = Resolver(local_index.url, tmp_path, 60)
    (pin,) = resolver.resolve(["setuptools>=70.1"], "2024-10-18T15:21:55Z", "3.11")
    assert str(pin) == "setuptools==75.2.0 ; python_version == '3.11'"  # 75.2.0: 2024-10-16; 75.3.0: 2024-10-29
    hatch = {p.name: str(p.version) for p in resolver.resolve(["hatchling"], "2024-10-18T15:21:55Z", "3.11")}
    assert hatch == {"hatchling": "1.25.0", "packaging": "24.1", "pathspec": "0.12.1", "pluggy": "1.5.0",
                     "trove-classifiers": "2024.10.16"}
    assert len(list((tmp_path / "resolutions").rglob("*.txt"))) == 2  # cached by their inputs


def test_the_recipe_changes_the_requirements():
    policy = BuildRequires(pin={"cython": "3.0.11"}, override={"setuptools": "setuptools<70"}, extra=("wheel",),
                           drop=("coherent-licensed",))
    assert policy.apply(["setuptools>=61", "Cython; python_version < '3.13'", "coherent.licensed"]) == [
        "setuptools<70", 'cython==3.0.11 ; python_version < "3.13"', "wheel"]


def test_changed_requirements_are_written_into_the_tree_keeping_the_rest(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = [\n\t# a comment, "not a requirement"\n\t"coherent.licensed",\n]\n'
        'build-backend = "setuptools.build_meta"\n\n[project]\nname = "x"\nkeywords = ["requires"]\n')
    write_requires(tmp_path, ["setuptools>=61"])
    data = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert data["build-system"] == {"requires": ["setuptools>=61"], "build-backend": "setuptools.build_meta"}
    assert data["project"] == {"name": "x", "keywords": ["requires"]}
    (tmp_path / "pyproject.toml").unlink()  # a legacy project: the table is added, with the legacy backend
    write_requires(tmp_path, ["setuptools", "wheel"])
    assert tomllib.loads((tmp_path / "pyproject.toml").read_text())["build-system"] == {
        "requires": ["setuptools", "wheel"], "build-backend": "setuptools.build_meta:__legacy__"}


def test_a_project_pinned_at_different_versions_per_cpython_offers_every_version(tmp_path):
    """An old release's tools differ per CPython (its day's on 3.11 and 3.13, 3.14's own later):
    the build environment lists each pinned version, and pip in it takes the right one on each."""
    index = tmp_path / "index"
    wheels = [make_wheel(tmp_path / "wheels", "setuptools", v, body=v) for v in ("75.6.0", "80.9.0", "81.0.0")]
    publish(index, [inspect_wheel(w) for w in wheels], "")
    name = canonicalize_name("setuptools")
    pins = [Pin(name, Version("75.6.0"), "python_version == '3.11'"),
            Pin(name, Version("75.6.0"), "python_version == '3.13'"),
            Pin(name, Version("80.9.0"), "python_version == '3.14'")]
    targets = every_target(("x86_64", "aarch64"), ("3.11", "3.13", "3.14"))
    found = inputs(pins, index, index.resolve().as_uri() + "/", targets)
    assert [(i.filename, sorted(i.targets)) for i in found] == [
        ("setuptools-75.6.0-py3-none-any.whl", ["cp311-aarch64", "cp311-x86_64", "cp313-aarch64", "cp313-x86_64"]),
        ("setuptools-80.9.0-py3-none-any.whl", ["cp314-aarch64", "cp314-x86_64"]),
    ]  # 81.0.0 is in the index but pinned by nothing: not offered

    env = BuildEnvironment.write(tmp_path / "buildenv", index, constraints(pins), found)
    page = (env.context / "simple" / "setuptools" / "index.html").read_text()
    assert "setuptools-75.6.0-py3-none-any.whl#sha256=" in page and "setuptools-80.9.0-py3-none-any.whl" in page
    assert "81.0.0" not in page
    assert sorted(p.name for p in (env.context / "wheels").iterdir()) == [
        "setuptools-75.6.0-py3-none-any.whl", "setuptools-80.9.0-py3-none-any.whl"]
    # pip in the environment on 3.11 (this interpreter: pip evaluates the markers against the
    # one it runs on, as in a build container) takes 3.11's pin.
    assert sys.version_info[:2] == (3, 11)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--index-url", (env.context / "simple").as_uri() + "/", "--constraint", str(env.context / "constraints.txt"),
         "--dest", str(tmp_path / "got"), "setuptools"],
        capture_output=True, text=True, env=isolated_pip_env(), check=False)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (tmp_path / "got").iterdir()] == ["setuptools-75.6.0-py3-none-any.whl"]
