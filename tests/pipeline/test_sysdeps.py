"""System libraries found by themselves: a build's misses read from its whole log, looked up in
Debian's Contents index, the package chosen by rules a person can read, installed, and the build
tried again. Real builds with no recipe, on both architectures; the real mirror's index."""

import gzip
import io
import subprocess
import sys

import pytest
from conftest import clean_venv, factory_env, pip_install
from support.signing import statement_of

from factory.config import PROJECT_ROOT
from factory.pipeline.contents import ContentsIndex, _build
from factory.pipeline.request import parse_request
from factory.pipeline.run import run
from factory.pipeline.sysdeps import Miss, choose, infer, misses

LOG = """\
copying lib/foo.py -> build/lib
zig-cc -c yaml/_yaml.c -o build/temp/yaml/_yaml.o
yaml/_yaml.c:1234:10: fatal error: 'yaml.h' file not found
Package libxml-2.0 was not found in the pkg-config search path.
No package 'libxml-2.0' found
ld.lld: error: unable to find library -lpq
sh: 1: curl-config: not found
Error: pg_config executable not found.
The headers or library files could not be found for zlib, a required dependency when compiling Pillow from source.
Please make sure the libxml2 and libxslt development packages are installed.
""" + "copying lots of files\n" * 300  # the reason is far from the tail


def test_the_whole_log_is_read_and_each_miss_keeps_its_line():
    found = misses(LOG)
    assert [(m.kind, m.name) for m in found] == [
        ("header", "yaml.h"), ("pkg-config", "libxml-2.0"), ("library", "pq"), ("program", "curl-config"),
        ("program", "pg_config"), ("name", "zlib"), ("name", "libxml2"), ("name", "libxslt")]
    assert found[0].line.endswith("fatal error: 'yaml.h' file not found")


def test_the_choice_among_candidates_follows_readable_rules():
    assert choose(["libyaml-dev"], "yaml.h") == ("libyaml-dev", "")
    best, why = choose(["libcurl4-gnutls-dev", "libcurl4-nss-dev", "libcurl4-openssl-dev"], "curl-config")
    assert best == "libcurl4-openssl-dev"
    assert why == ("chosen over libcurl4-gnutls-dev, libcurl4-nss-dev: OpenSSL's, as CPython's ssl module")
    assert choose(["libfoo1", "libfoo-dev"], "libfoo.so")[0] == "libfoo-dev"


def contents(tmp_path, lines):
    data = gzip.compress("".join(f"{path} {pkgs}\n" for path, pkgs in lines).encode())
    _build(tmp_path / "c.sqlite3", iter(gzip.GzipFile(fileobj=io.BytesIO(data))), "image")
    return ContentsIndex(tmp_path / "c.sqlite3")


def test_inference_prefers_the_exact_path_and_skips_what_is_installed(tmp_path):
    index = contents(tmp_path, [
        ("usr/include/yaml.h", "libdevel/libyaml-dev"),
        ("usr/include/yaml-cpp/yaml.h", "libdevel/libyaml-cpp-dev"),
        ("usr/bin/curl-config", "libdevel/libcurl4-gnutls-dev,libdevel/libcurl4-openssl-dev"),
        ("usr/lib/x86_64-linux-gnu/libpq.so", "libdevel/libpq-dev"),
        ("usr/lib/x86_64-linux-gnu/pkgconfig/zlib.pc", "libdevel/zlib1g-dev"),
        ("usr/include/stdio.h", "libdevel/libc6-dev"),
    ])
    found, unresolved = infer(misses(LOG) + [Miss("header", "stdio.h", "x")], index, "x86_64-linux-gnu",
                              installed=["libc6-dev"])
    assert [(i.package, i.file) for i in found] == [
        ("libyaml-dev", "usr/include/yaml.h"), ("libpq-dev", "usr/lib/x86_64-linux-gnu/libpq.so"),
        ("libcurl4-openssl-dev", "usr/bin/curl-config"), ("zlib1g-dev", "usr/lib/x86_64-linux-gnu/pkgconfig/zlib.pc")]
    assert "/usr/bin/curl-config is in libcurl4-openssl-dev" in found[2].reason
    assert [m.name for m in unresolved] == ["libxml-2.0", "pg_config", "libxml2", "libxslt", "stdio.h"]
    # Once curl-config's package is installed, another curl-config is never the answer.
    found, unresolved = infer([Miss("program", "curl-config", "x")], index, "x86_64-linux-gnu",
                              installed=["libcurl4-openssl-dev"])
    assert (found, [m.name for m in unresolved]) == ([], ["curl-config"])


@pytest.mark.container
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_a_library_found_through_pkg_config_is_installed_by_itself(config, tmp_path, arch, request):
    request.getfixturevalue("arm64_image" if arch == "aarch64" else "builder_image")
    cfg = config.replace(archs=(arch,))
    record = run(parse_request("fixture-pkgconfig==1.0.0"), cfg)
    assert record.status == "built", f"{record.failure_class}: {record.reason}\n{record.log_tail}"
    (package,) = record.system_packages
    assert (package.name, package.version != "") == ("libffi-dev", True)
    assert package.why.startswith("inferred: pkg-config module libffi not found")
    assert "/pkgconfig/libffi.pc is in libffi-dev" in package.why
    if arch == "x86_64":  # a host venv runs x86_64 only
        python = clean_venv(tmp_path / "venv")
        assert pip_install(python, cfg.index_dir, "fixture-pkgconfig==1.0.0").returncode == 0
        done = subprocess.run([str(python), "-c", "import fixture_pkgconfig; print(fixture_pkgconfig.prepared())"],
                              capture_output=True, text=True)
        assert done.stdout.strip() == "True", done.stderr  # libffi was grafted into the wheel
    suggested = subprocess.run([sys.executable, "-m", "factory", "recipes", "suggest", "fixture-pkgconfig"],
                               capture_output=True, text=True, env=factory_env(cfg))
    assert suggested.returncode == 0, suggested.stderr
    assert 'system-packages = [\n    "libffi-dev",' in suggested.stdout


@pytest.mark.container
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_pyyaml_finds_libyaml_without_its_recipe_naming_it(config, tmp_path, arch, request):
    request.getfixturevalue("arm64_image" if arch == "aarch64" else "builder_image")
    cfg = config.replace(archs=(arch,))
    recipe = (PROJECT_ROOT / "recipes" / "pyyaml.toml").read_text()
    assert 'system-packages = ["libyaml-dev"]\n' in recipe
    # The rest of the recipe stays: PYYAML_FORCE_LIBYAML, and the test that loads with yaml.CLoader in a
    # clean container of the target (under QEMU for aarch64), where Debian's libyaml is not installed.
    (cfg.recipes_dir / "pyyaml.toml").write_text(recipe.replace('system-packages = ["libyaml-dev"]\n', ""))
    from factory.pipeline.bootstrap import build

    node = build(parse_request("pyyaml==6.0.3"), cfg)
    assert node.ok, f"{node.record.failure_class}: {node.record.reason}\n{node.record.log_tail}"
    (package,) = node.record.system_packages
    assert package.name == "libyaml-dev" and "header yaml.h not found" in package.why
    (wheel,) = [f for f in node.record.published if f.endswith(".whl")]
    assert f"manylinux_2_28_{arch}" in wheel
    # The provenance names the package with its Debian version, and why it was installed.
    statement = statement_of(cfg.index_dir, wheel)
    (deb,) = [d for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]
              if d["name"] == "system-package"]
    assert deb["uri"] == f"pkg:deb/debian/libyaml-dev@{package.version}" and package.version
    assert deb["annotations"]["why"] == package.why
    if arch == "x86_64":  # a host venv runs x86_64 only
        python = clean_venv(tmp_path / "venv")
        assert pip_install(python, cfg.index_dir, "pyyaml==6.0.3").returncode == 0
        done = subprocess.run([str(python), "-c", "import yaml; print(yaml.load('a: 1', Loader=yaml.CLoader))"],
                              capture_output=True, text=True)
        assert done.stdout.strip() == "{'a': 1}", done.stderr


@pytest.mark.container
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_a_library_found_through_a_config_program_is_installed_by_itself(config, tmp_path, arch, request):
    request.getfixturevalue("arm64_image" if arch == "aarch64" else "builder_image")
    cfg = config.replace(archs=(arch,))
    record = run(parse_request("fixture-config==1.0.0"), cfg)
    assert record.status == "built", f"{record.failure_class}: {record.reason}\n{record.log_tail}"
    (package,) = record.system_packages
    assert package.name == "libpcre2-dev"
    assert package.why.startswith("inferred: program pcre2-config not found")
    assert "No such file or directory: 'pcre2-config'" in package.why
    if arch == "x86_64":
        python = clean_venv(tmp_path / "venv")
        assert pip_install(python, cfg.index_dir, "fixture-config==1.0.0").returncode == 0
        done = subprocess.run([str(python), "-c", "import fixture_config; print(fixture_config.matches('a+b', 'xaab'))"],
                              capture_output=True, text=True)
        assert done.stdout.strip() == "True", done.stderr
