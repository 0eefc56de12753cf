"""Shared fixtures: fixture sdists on a local index, a config pointing at it, the builder image."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.index_server import LocalIndex
from support.sdists import MALICIOUS, make_sdist, malicious_sdist

from factory import config as factory_config
from factory.pipeline import images
from factory.sigstore_stack import LocalSigstore

FIXTURES = ["fixture-pure", "fixture-cext", "fixture-cpp", "fixture-newglibc", "fixture-abi3", "fixture-no313",
            "fixture-gnuc", "fixture-needsyaml"]


@pytest.fixture(scope="session")
def sdists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dest = tmp_path_factory.mktemp("sdists")
    return {name: make_sdist(name, "1.0.0", dest) for name in FIXTURES}


@pytest.fixture(scope="session")
def local_index(sdists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIndex]:
    """The tests' upstream: fixture projects, and a redirect to pip's index for everything else."""
    with LocalIndex(fallback=factory_config.pip_index_url()) as index:
        for name, path in sdists.items():
            index.add_file(name, path)
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


@pytest.fixture
def config(local_index: LocalIndex, tmp_path: Path, sigstore_stack: LocalSigstore) -> factory_config.Config:
    """factory's config for one test: its own index, state and (empty) recipes, the local
    upstream, and one target (cp311 on x86_64) unless the test asks for more."""
    (tmp_path / "recipes").mkdir()
    env = {"FACTORY_UPSTREAM": local_index.url, "FACTORY_INDEX_DIR": str(tmp_path / "index"),
           "FACTORY_STATE_DIR": str(tmp_path / "state"), "FACTORY_RECIPES_DIR": str(tmp_path / "recipes"),
           "FACTORY_ARCHS": "x86_64", "FACTORY_PYTHONS": "3.11", **signing_env(sigstore_stack)}
    return factory_config.load(None, env)


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
