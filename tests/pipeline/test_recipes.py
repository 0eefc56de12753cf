"""Recipes: the schema (good and bad files), version scoping, patches, and a failing patch."""

import shutil
import subprocess
import sys

import pytest
from packaging.version import Version
from support.sdists import PROJECTS

from factory import recipes
from factory.config import PROJECT_ROOT
from factory.failures import BuildFailure, FailureClass
from factory.pipeline.patch import apply_patches
from factory.pipeline.request import parse_request
from factory.pipeline.run import run

GOOD = """
versions = ">=1"
toolchain = "zig"
system-packages = ["libyaml-dev"]
env = { FOO = "1", BAR = "base" }
config-settings = { "--build-option" = ["--a", "--b"], "setup-args" = "-Dx=y" }
patches = ["0002-second.patch", "0001-first.patch"]
skip = [{ arch = "aarch64", python = "3.13", reason = "upstream bug 123" }]

[test]
imports = ["demo", "demo._speedups"]
command = "python -c 'import demo'"

[[override]]
versions = ">=2,<3"
env = { BAR = "two" }
system-packages = ["libffi-dev"]
toolchain = "gcc"

[[override]]
versions = "==2.5"
source = { url = "https://example.invalid/demo-{version}.tar.gz", sha256 = "%s" }
pure = true
""" % ("ab" * 32)


@pytest.fixture
def recipes_dir(tmp_path):
    patches = tmp_path / "patches" / "demo"
    patches.mkdir(parents=True)
    (patches / "0001-first.patch").write_text("first\n")
    (patches / "0002-second.patch").write_text("second\n")
    (tmp_path / "demo.toml").write_text(GOOD)
    return tmp_path


def test_a_good_recipe_and_its_version_scopes(recipes_dir):
    one = recipes.load(recipes_dir, "demo", Version("1.4"))
    assert one.toolchain == "zig" and one.system_packages == ("libyaml-dev",)
    assert one.env == {"FOO": "1", "BAR": "base"}
    assert one.config_settings == {"--build-option": ("--a", "--b"), "setup-args": "-Dx=y"}
    assert [p.name for p in one.patches] == ["0001-first.patch", "0002-second.patch"]  # name order
    assert one.skipped("aarch64", "3.13").reason == "upstream bug 123"
    assert one.skipped("aarch64", "3.11") is None and one.skipped("x86_64", "3.13") is None
    assert one.test.imports == ("demo", "demo._speedups")
    assert one.source is None and not one.pure
    assert len(one.digest) == 64

    two = recipes.load(recipes_dir, "demo", Version("2.1"))
    assert two.env == {"FOO": "1", "BAR": "two"}  # tables merge key by key
    assert two.system_packages == ("libffi-dev",)  # lists replace
    assert two.toolchain == "gcc" and two.source is None

    pinned = recipes.load(recipes_dir, "demo", Version("2.5"))
    assert pinned.source.url_for(Version("2.5")) == "https://example.invalid/demo-2.5.tar.gz"
    assert pinned.pure and pinned.toolchain == "gcc"  # both overrides apply, in file order

    none = recipes.load(recipes_dir, "demo", Version("0.9"))  # outside the recipe's `versions`
    assert none == recipes.Recipe("demo")
    assert recipes.load(recipes_dir, "other", Version("1")) == recipes.Recipe("other")


def test_the_digest_follows_the_patches(recipes_dir):
    before = recipes.load(recipes_dir, "demo", Version("1")).digest
    (recipes_dir / "patches" / "demo" / "0001-first.patch").write_text("changed\n")
    assert recipes.load(recipes_dir, "demo", Version("1")).digest != before


BAD = [
    ("colour = 'red'\n", "`colour`: unknown key"),
    ("toolchain = 'clang'\n", "`toolchain`: must be one of zig, gcc"),
    ("system-packages = ['libyaml-dev; rm -rf /']\n", "`system-packages[0]`: must be a Debian package name"),
    ("system-packages = 'libyaml-dev'\n", "`system-packages`: must be a list"),
    ("env = { FOO = 1 }\n", "`env.FOO`: must be a string"),
    ("env = { 'BAD NAME' = 'x' }\n", "`env.BAD NAME`: must be a variable name"),
    ("patches = ['missing.patch']\n", "`patches[0]`: no such patch"),
    ("patches = ['../../etc/passwd']\n", "`patches[0]`: must be a file name"),
    ("source = { url = 'https://x/{name}.tar.gz', sha256 = '%s' }\n" % ("0" * 64), "`source.url`: only {version}"),
    ("source = { url = 'https://x/a.tar.gz', sha256 = 'abc' }\n", "`source.sha256`: must be 64 lowercase hex"),
    ("source = { url = 'https://x/a.tar.gz' }\n", "`source`: needs both"),
    ("source = { url = 'file:///etc/passwd', sha256 = '%s' }\n" % ("0" * 64), "`source.url`: must be an http(s) URL"),
    ("pure = 'yes'\n", "`pure`: must be true or false"),
    ("skip = [{ arch = 'sparc', reason = 'x' }]\n", "`skip[0].arch`: must be one of"),
    ("skip = [{ arch = 'aarch64' }]\n", "`skip[0]`: needs a `reason`"),
    ("[test]\n", "`test`: needs `imports` or a `command`"),
    ("[test]\nimports = ['not a module']\n", "`test.imports[0]`: must be a module name"),
    ("versions = 'latest'\n", "`versions`: 'latest' is not a version specifier"),
    ("[[override]]\nenv = { A = 'b' }\n", "`override[0]`: needs `versions`"),
    ("[[override]]\nversions = '>=1'\nwhat = 1\n", "`override[0].what`: unknown key"),
    ("this is not toml\n", "cannot read recipe"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_recipes_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "demo.toml"
    path.write_text(text)
    with pytest.raises(recipes.RecipeError) as info:
        recipes.check(path)
    assert str(path) in str(info.value) and message in str(info.value), info.value


def test_recipe_files_are_named_by_the_normalized_name(tmp_path):
    path = tmp_path / "PyYAML.toml"
    path.write_text("")
    with pytest.raises(recipes.RecipeError, match="pyyaml.toml"):
        recipes.check(path)


def test_the_shipped_recipes_are_valid():
    done = subprocess.run([sys.executable, "-m", "factory", "recipes", "check"], capture_output=True, text=True,
                          env={"FACTORY_RECIPES_DIR": str(PROJECT_ROOT / "recipes"), "FACTORY_UPSTREAM": "http://127.0.0.1:9/",
                               "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "ok pyyaml.toml" in done.stdout and "ok markupsafe.toml" in done.stdout


PATCH = """\
--- a/src/fixture_pure/__init__.py
+++ b/src/fixture_pure/__init__.py
@@ -1,2 +1,2 @@
 def greet(name: str) -> str:
-    return f"hello, {name}"
+    return f"patched hello, {name}"
"""


def test_patches_apply_in_order_and_a_bad_one_fails_loudly(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(PROJECTS / "fixture-pure", tree)
    good = tmp_path / "0001-greet.patch"
    good.write_text(PATCH)
    apply_patches(tree, [good])
    assert "patched hello" in (tree / "src" / "fixture_pure" / "__init__.py").read_text()
    with pytest.raises(BuildFailure) as info:
        apply_patches(tree, [good])  # already applied: it no longer applies
    assert info.value.failure_class == FailureClass.RECIPE and "0001-greet.patch" in info.value.reason


def test_a_recipe_whose_patch_does_not_apply_fails_the_build(config):
    patches = config.recipes_dir / "patches" / "fixture-pure"
    patches.mkdir(parents=True)
    (patches / "0001-wrong.patch").write_text(PATCH.replace("hello, {name}", "goodbye, {name}"))
    (config.recipes_dir / "fixture-pure.toml").write_text('patches = ["0001-wrong.patch"]\n')
    record = run(parse_request("fixture-pure==1.0.0"), config)
    assert record.status == "failed" and record.failure_class == "recipe"
    assert "0001-wrong.patch does not apply" in record.reason
    assert record.recipe.digest and "images" not in record.durations
    assert not (config.index_dir / "simple").exists()


def test_a_broken_recipe_fails_the_build_naming_it(config):
    (config.recipes_dir / "fixture-pure.toml").write_text("toolchain = 'msvc'\n")
    record = run(parse_request("fixture-pure==1.0.0"), config)
    assert record.status == "failed" and record.failure_class == "recipe"
    assert "fixture-pure.toml" in record.reason and "toolchain" in record.reason
