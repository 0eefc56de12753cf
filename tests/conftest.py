"""Shared fixtures: fixture sdists on a local index, a config pointing at it, the builder image."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.index_server import FIXTURE_UPLOADED, LocalIndex
from support.sdists import MALICIOUS, make_sdist, malicious_sdist
from support.wheels import make_wheel

from factory import config as factory_config
from factory.config import PROJECT_ROOT
from factory.index.manifest import Manifest
from factory.index.publish import rebuild
from factory.pipeline import bootstrap, images
from factory.pipeline.request import BuildRequest
from factory.pipeline.requirements import Resolver, cutoff
from factory.sigstore_stack import LocalSigstore

FIXTURES = ["fixture-pure", "fixture-cext", "fixture-cpp", "fixture-newglibc", "fixture-abi3", "fixture-no313",
            "fixture-gnuc", "fixture-needsyaml", "fixture-network", "fixture-tool", "fixture-uses-tool",
            "fixture-broken-tool", "fixture-uses-broken-tool", "fixture-hatch", "fixture-flit", "fixture-self",
            "fixture-rust", "fixture-fallback", "fixture-pkgconfig", "fixture-config",
            "fixture-nosuchheader", "fixture-scm", "fixture-poetry", "fixture-pdm", "fixture-meson",
            "fixture-skbuild", "fixture-sneaky", "fixture-gate", "fixture-gate-hidden"]
#: Fixture build tools the upstream also offers as wheels: resolution reads wheel metadata only.
TOOL_WHEELS = ["fixture-tool", "fixture-broken-tool", "fixture-self"]


@pytest.fixture(scope="session")
def sdists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dest = tmp_path_factory.mktemp("sdists")
    # fixture-pure's PKG-INFO is static metadata (2.2): the index offers it as the sdist's sidecar.
    return {name: make_sdist(name, "1.0.0", dest, metadata_version="2.2" if name == "fixture-pure" else "2.1")
            for name in FIXTURES}


@pytest.fixture(scope="session")
def local_index(sdists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIndex]:
    """The tests' upstream: fixture projects, and a redirect to pip's index for everything else."""
    with LocalIndex(fallback=factory_config.pip_index_url()) as index:
        for name, path in sdists.items():
            index.add_file(name, path)
        wheels = tmp_path_factory.mktemp("tool-wheels")
        for name in TOOL_WHEELS:
            index.add_file(name, make_wheel(wheels, name, "1.0.0"))
        # A newer release with a wheel and no sdist: it cannot be rebuilt, so resolution steps over it.
        index.add_file("fixture-tool", make_wheel(wheels, "fixture-tool", "2.0.0"))
        other = tmp_path_factory.mktemp("other-sdists")
        # A declared hash that does not match the bytes.
        bad = other / "fixture_badhash-1.0.0.tar.gz"
        shutil.copyfile(sdists["fixture-pure"], bad)
        index.add_file("fixture-badhash", bad, sha256="0" * 64)
        # A release with wheels only.
        wheel = other / "fixture_wheelonly-1.0.0-py3-none-any.whl"
        wheel.write_bytes(b"not really a wheel")
        index.add_file("fixture-wheelonly", wheel)
        # Listed, but the file is gone.
        gone = other / "fixture_gone-1.0.0.tar.gz"
        shutil.copyfile(sdists["fixture-pure"], gone)
        index.add_file("fixture-gone", gone, missing=True)
        # Served as HTML only: resolve must fall back from JSON.
        html = other / "fixture_htmlonly-1.0.0.tar.gz"
        shutil.copyfile(sdists["fixture-pure"], html)
        index.add_file("fixture-htmlonly", html, requires_python=">=3.8")
        index.html_only.add("fixture-htmlonly")
        for case in MALICIOUS:
            path, _ = malicious_sdist(case, other)
            index.add_file(f"evil-{case}", path)
        yield index


@pytest.fixture(scope="session", autouse=True)
def sigstore_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSigstore]:
    """factory's local Sigstore stack for the whole session: every build signs with it, and the
    settings reach CLI subprocesses through the environment."""
    with LocalSigstore(tmp_path_factory.mktemp("sigstore")) as stack:
        previous = {k: os.environ.get(k) for k in SIGNING_ENV}
        os.environ.update(signing_env(stack))
        try:
            yield stack
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


SIGNING_ENV = ("FACTORY_SIGNING", "FACTORY_LOCAL_SIGSTORE", "FACTORY_TRUST_CONFIG", "FACTORY_LOCAL_SIGSTORE_SECRET")


def signing_env(stack: LocalSigstore) -> dict[str, str]:
    return {"FACTORY_SIGNING": "local", "FACTORY_LOCAL_SIGSTORE": stack.url,
            "FACTORY_TRUST_CONFIG": str(stack.trust_config_path),
            "FACTORY_LOCAL_SIGSTORE_SECRET": str(stack.token_secret_path)}


def _config(local_index: LocalIndex, root: Path, stack: LocalSigstore) -> factory_config.Config:
    """factory's config under ``root``: its own index, state, and the build tools' recipes (a
    test adds its own), the local upstream, and one target (cp311 on x86_64)."""
    recipes = root / "recipes"
    recipes.mkdir(parents=True)
    for name in BUILD_TOOL_RECIPES:
        shutil.copyfile(PROJECT_ROOT / "recipes" / name, recipes / name)
    env = {"FACTORY_UPSTREAM": local_index.url, "FACTORY_INDEX_DIR": str(root / "index"),
           "FACTORY_STATE_DIR": str(root / "state"), "FACTORY_RECIPES_DIR": str(recipes),
           "FACTORY_ARCHS": "x86_64", "FACTORY_PYTHONS": "3.11", **signing_env(stack)}
    return factory_config.load(None, env)


#: Recipes factory ships for build tools, which every test's builds may need.
BUILD_TOOL_RECIPES = ("setuptools.toml", "cython.toml")


@pytest.fixture(scope="session")
def tools_index(local_index: LocalIndex, tmp_path_factory: pytest.TempPathFactory, sigstore_stack: LocalSigstore,
                builder_image: images.BuilderImage) -> Path:
    """An index holding what the fixture projects need to build (setuptools, as of their upload
    time), bootstrapped once for the session: each container test's index starts as a copy."""
    cfg = _config(local_index, tmp_path_factory.mktemp("tools"), sigstore_stack)
    resolver = Resolver(cfg.upstream, cfg.cache_dir, cfg.http_timeout)
    pins = {(p.name, p.version) for python in ("3.11", "3.13")  # the CPythons the tests build for
            for p in resolver.resolve(["setuptools>=61"], cutoff(FIXTURE_UPLOADED, python), python)}
    for name, version in sorted(pins):
        node = bootstrap.build(BuildRequest(name, version), cfg)
        assert node.ok, f"bootstrapping {name}=={version}: {node.record.failure_class}: {node.record.reason}"
    return cfg.index_dir


@pytest.fixture
def config(request: pytest.FixtureRequest, local_index: LocalIndex, tmp_path: Path,
           sigstore_stack: LocalSigstore) -> factory_config.Config:
    """factory's config for one test (see ``_config``); a container test's index starts with the
    build tools of the fixtures (``tools_index``), as a user's would after its first builds."""
    cfg = _config(local_index, tmp_path, sigstore_stack)
    if request.node.get_closest_marker("container"):
        shutil.copytree(request.getfixturevalue("tools_index"), cfg.index_dir, symlinks=True)
        rebuild(cfg.index_dir, cfg.page_base_url)  # its pages as this config writes them
    return cfg


def factory_env(cfg: factory_config.Config, **extra: str) -> dict[str, str]:
    """The environment for ``python -m factory`` with ``cfg``'s upstream, index, state and recipes."""
    return {**os.environ, "FACTORY_UPSTREAM": cfg.upstream, "FACTORY_INDEX_DIR": str(cfg.index_dir),
            "FACTORY_STATE_DIR": str(cfg.state_dir), "FACTORY_RECIPES_DIR": str(cfg.recipes_dir), **extra}


def assert_not_published(cfg: factory_config.Config, project: str) -> None:
    """Nothing of ``project`` reached the index: no file, no page."""
    manifest = Manifest.existing(cfg.index_dir)
    if manifest is not None:
        with manifest:
            assert manifest.files(project) == []
    assert not (cfg.index_dir / "simple" / project).exists()


def _image(tmp_path_factory: pytest.TempPathFactory, arch: str) -> images.BuilderImage:
    state = tmp_path_factory.mktemp(f"image-state-{arch}")
    cfg = factory_config.load(None, {"FACTORY_STATE_DIR": str(state), "FACTORY_UPSTREAM": "http://unused.invalid/"})
    return images.ensure(cfg, arch)


@pytest.fixture(scope="session")
def builder_image(tmp_path_factory: pytest.TempPathFactory) -> images.BuilderImage:
    """The x86_64 builder image (built here if `just setup` has not built it yet)."""
    return _image(tmp_path_factory, "x86_64")


@pytest.fixture(scope="session")
def arm64_image(tmp_path_factory: pytest.TempPathFactory) -> images.BuilderImage:
    """The aarch64 builder image, run under QEMU."""
    return _image(tmp_path_factory, "aarch64")


POSTGRES = os.environ.get("FACTORY_TEST_POSTGRES", "postgresql://factory:factory@127.0.0.1:5432/factory_test")


@pytest.fixture(scope="session")
def postgres() -> str:
    """The test PostgreSQL server (tests/postgres-setup starts it; `just test` runs that)."""
    import psycopg

    try:
        psycopg.connect(POSTGRES, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"no PostgreSQL at {POSTGRES}: run tests/postgres-setup (`just test` does): {exc}")
    return POSTGRES


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty queue: an SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield str(tmp_path / "queue.sqlite3")
        return
    import secrets

    import psycopg

    server = request.getfixturevalue("postgres")
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{server}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def clean_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin" / "python"


def isolated_pip_env() -> dict[str, str]:
    """pip with no configuration but ours: this machine's pip config adds other indexes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1")
    return env


def pip_install(python: Path, index_dir: Path, *requirements: str) -> subprocess.CompletedProcess[str]:
    """Install from the published index only (``file://``), as a user would."""
    return subprocess.run(
        [str(python), "-m", "pip", "install", "--isolated", "--no-cache-dir", "--only-binary=:all:",
         "--index-url", (index_dir / "simple").as_uri() + "/", *requirements],
        capture_output=True, text=True, env=isolated_pip_env(), check=False,
    )
