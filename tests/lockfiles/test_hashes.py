"""`factory hashes`: lock files and hash-pinned requirements made against the upstream, adopted
for factory's index without regenerating them. Tested with the real tools: the files are made by
uv against a local upstream, then installed with `pip install --require-hashes`, `uv sync
--locked` and `uv pip sync pylock.toml` through `factory serve`."""

import os
import subprocess
import sys

import pytest
from support.index_server import LocalIndex
from support.installers import UV, pip_venv, uv_env, values
from support.sdists import make_sdist
from support.server import running
from support.wheels import make_wheel

from factory.index.distfile import inspect_sdist, inspect_wheel
from factory.index.publish import publish
from factory.lockfiles import requirements
from factory.lockfiles.ours import LockError, Ours


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Our index (demo-alpha 1.0: our wheel and upstream's sdist; demo-beta 1.0), the upstream
    (other bytes under the same wheel names, and demo-other, which we do not serve), and
    `factory serve` over ours with the upstream as its fallback."""
    root = tmp_path_factory.mktemp("hashes")
    (root / "s").mkdir()
    sdist = make_sdist("fixture-pure", "1.0", root / "s", name="demo-alpha", metadata_version="2.2")
    publish(root / "index", [inspect_wheel(make_wheel(root / "o", "demo-alpha", "1.0", body="ours")),
                             inspect_sdist(sdist), inspect_wheel(make_wheel(root / "o", "demo-beta", "1.0", body="ours"))],
            "")
    with LocalIndex() as upstream:
        upstream.add_file("demo-alpha", make_wheel(root / "u", "demo-alpha", "1.0", body="upstream"))
        upstream.add_file("demo-alpha", sdist)  # the very sdist we publish beside our wheel
        upstream.add_file("demo-beta", make_wheel(root / "u", "demo-beta", "1.0", body="upstream"))
        upstream.add_file("demo-other", make_wheel(root / "u", "demo-other", "1.0", body="upstream"))
        with running(root / "index", root / "state", upstream=upstream.url) as served:
            yield root / "index", upstream.url, served + "/simple/"


def factory(index_dir, *args):
    env = {**os.environ, "FACTORY_INDEX_DIR": str(index_dir), "FACTORY_UPSTREAM": "http://127.0.0.1:9/simple/"}
    return subprocess.run([sys.executable, "-m", "factory", *args], capture_output=True, text=True, env=env)


def uv(*args, cwd=None):
    return subprocess.run([UV, *args], capture_output=True, text=True, env=uv_env(), cwd=cwd)


def project(path, upstream):
    """A project depending on all three, locked against the upstream (uv.lock and pylock.toml)."""
    path.mkdir()
    (path / "pyproject.toml").write_text('[project]\nname = "app"\nversion = "0"\nrequires-python = ">=3.8"\n'
                                         'dependencies = ["demo-alpha==1.0", "demo-beta", "demo-other"]\n')
    locked = uv("lock", "--no-config", "--default-index", upstream, cwd=path)
    assert locked.returncode == 0, locked.stderr
    exported = uv("export", "--no-config", "--format", "pylock.toml", "-o", "pylock.toml", "--default-index", upstream,
                  cwd=path)
    assert exported.returncode == 0, exported.stderr
    return path


def test_hash_pinned_requirements_install_ours_with_require_hashes(setup, tmp_path):
    index, upstream, served = setup
    (tmp_path / "requirements.in").write_text("demo-alpha==1.0\ndemo-beta\ndemo-other\n")
    compiled = uv("pip", "compile", "--no-config", "--generate-hashes", "--index-url", upstream, "-o",
                  str(tmp_path / "requirements.txt"), str(tmp_path / "requirements.in"))
    assert compiled.returncode == 0, compiled.stderr
    reqs = tmp_path / "requirements.txt"
    before = reqs.read_text()
    # Upstream's hashes only: factory's wheel is refused (its sdist would pass: it is the upstream's).
    refused = pip_venv(tmp_path / "refused", served, "--only-binary=:all:", "--require-hashes", "-r", str(reqs))
    assert refused.returncode != 0 and "THESE PACKAGES DO NOT MATCH THE HASHES" in refused.stderr

    check = factory(index, "hashes", "--check", str(reqs))
    assert check.returncode == 1 and "2 pins factory serves, 2 would change" in check.stdout
    assert reqs.read_text() == before  # --check writes nothing
    done = factory(index, "hashes", str(reqs))
    assert done.returncode == 0, done.stderr
    assert "demo-alpha==1.0: added 1 sha256 of ours" in done.stdout  # its sdist's hash was there already
    text = reqs.read_text()
    assert all(line in text for line in before.splitlines())  # upstream's hashes stay, nothing else moves
    assert factory(index, "hashes", "--check", str(reqs)).returncode == 0  # idempotent

    ours = pip_venv(tmp_path / "ours", served, "--only-binary=:all:", "--require-hashes", "-r", str(reqs))
    assert ours.returncode == 0, ours.stderr
    assert values(tmp_path / "ours" / "bin" / "python", "demo_alpha", "demo_beta", "demo_other") == \
        ["ours", "ours", "upstream"]
    theirs = pip_venv(tmp_path / "theirs", upstream, "--only-binary=:all:", "--require-hashes", "-r", str(reqs))  # still good upstream
    assert theirs.returncode == 0, theirs.stderr
    assert values(tmp_path / "theirs" / "bin" / "python", "demo_alpha") == ["upstream"]


def test_uv_lock_is_pointed_at_our_files_and_syncs_locked(setup, tmp_path):
    index, upstream, served = setup
    path = project(tmp_path / "app", upstream)
    lock = path / "uv.lock"
    before = lock.read_text()
    other_block = before[before.index('[[package]]\nname = "demo-other"'):]
    sync = ["sync", "--locked", "--no-config", "--no-cache", "--index", served, "--default-index", upstream]

    check = factory(index, "hashes", "--check", "--index-url", served, str(lock))
    assert check.returncode == 1 and lock.read_text() == before
    done = factory(index, "hashes", "--index-url", served, str(lock))
    assert done.returncode == 0, done.stderr
    assert "uv.lock (uv.lock): 2 pins factory serves, 2 changed" in done.stdout
    after = lock.read_text()
    assert after.endswith(other_block)  # what we do not serve is left as it was, byte for byte
    assert after.count(f'source = {{ registry = "{served}" }}') == 2
    synced = uv(*sync, cwd=path)
    assert synced.returncode == 0, synced.stderr
    assert values(path / ".venv" / "bin" / "python", "demo_alpha", "demo_beta", "demo_other") == \
        ["ours", "ours", "upstream"]
    assert factory(index, "hashes", "--check", "--index-url", served, str(lock)).returncode == 0


def test_pylock_is_pointed_at_our_files_and_installs_them(setup, tmp_path):
    index, upstream, served = setup
    path = project(tmp_path / "app", upstream)
    done = factory(index, "hashes", "--index-url", served, str(path / "pylock.toml"))
    assert done.returncode == 0, done.stderr
    assert "2 pins factory serves, 2 changed" in done.stdout
    venv = tmp_path / "venv"
    assert uv("venv", "--no-config", "-q", str(venv)).returncode == 0
    synced = uv("pip", "sync", "--no-config", "--no-cache", "--python", str(venv / "bin" / "python"),
                str(path / "pylock.toml"))
    assert synced.returncode == 0, synced.stderr
    assert values(venv / "bin" / "python", "demo_alpha", "demo_beta", "demo_other") == ["ours", "ours", "upstream"]


def test_lock_files_need_the_url_of_our_index_and_refuse_another(setup, tmp_path):
    index, upstream, _ = setup
    path = project(tmp_path / "app", upstream)
    no_url = factory(index, "hashes", str(path / "uv.lock"))
    assert no_url.returncode == 2 and "give --index-url" in no_url.stderr
    wrong = factory(index, "hashes", "--index-url", upstream, str(path / "uv.lock"))
    assert wrong.returncode == 2 and "offers other bytes as demo_alpha-1.0-py3-none-any.whl" in wrong.stderr


def test_requirements_formats_keep_their_shape(setup):
    index, _, _ = setup
    ours = Ours(index)
    mine = [f.sha256 for f in ours.files("demo-alpha", "1.0")]
    h = "a" * 64
    text, pins = requirements.rewrite(f"demo-alpha==1.0 --hash=sha256:{h}  # pinned\n", ours)
    assert text == f"demo-alpha==1.0 --hash=sha256:{h}" + "".join(f" --hash=sha256:{m}" for m in mine) + " # pinned\n"
    assert [p.change for p in pins] == ["added 2 sha256 of ours"]
    unhashed = "demo-beta==1.0\n-r other.txt\nDemo_Beta == 1.0 ; python_version >= '3'\n"
    text, pins = requirements.rewrite(unhashed, ours)
    assert text == unhashed and [p.change for p in pins] == ["", ""]  # no hashes: none added
    crlf = f"demo-beta==1.0 \\\r\n    --hash=sha256:{h}\r\n"
    text, _ = requirements.rewrite(crlf, ours)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    with pytest.raises(LockError, match="no index here"):
        Ours(index.parent / "nothing")
