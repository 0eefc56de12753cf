"""Build requirements without a container: as of when they are resolved, the resolution itself
(uv against the tests' local index, which redirects to the real upstream), the recipe's changes
and their writing into the tree."""

import tomllib

from factory.pipeline.requirements import Resolver, cutoff, later, write_requires
from factory.recipes import BuildRequires


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
