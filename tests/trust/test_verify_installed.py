"""`factory verify --env` hashes what is installed (issue 12, item 1): a distribution installed
from the index and changed after is a failure, whatever the change; files no distribution lists
are not ours. The wheels are made by hand and signed for real; pip installs them."""

import json
import marshal
import os
import shutil
import subprocess
import sys
from importlib.util import MAGIC_NUMBER

import pytest
from conftest import isolated_pip_env
from support.signing import signed
from support.wheels import make_wheel

from factory.index.distfile import inspect_wheel
from factory.index.publish import publish


@pytest.fixture(scope="module")
def installed(tmp_path_factory, sigstore_stack, local_index):
    """A venv holding demo 1.0 from a signed index (pip compiles its modules), kept pristine."""
    from conftest import _config

    root = tmp_path_factory.mktemp("installed")
    config = _config(local_index, root, sigstore_stack)
    publish(config.index_dir, signed(config, [inspect_wheel(make_wheel(root / "w", "demo", "1.0", body="ours"))]), "")
    env = root / "pristine"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "--isolated",
                           "--no-cache-dir", "--index-url", (config.index_dir / "simple").as_uri() + "/", "demo"],
                          capture_output=True, text=True, env=isolated_pip_env())
    assert done.returncode == 0, done.stderr
    return config, env


@pytest.fixture
def env(installed, tmp_path):
    """A copy of the venv, for one test to change."""
    _, pristine = installed
    copy = tmp_path / "venv"
    shutil.copytree(pristine, copy, symlinks=True)
    return copy


def site(env):
    return next(env.glob("lib/python3*/site-packages"))


def verify(installed, env, *args):
    config, _ = installed
    environ = {**os.environ, "FACTORY_INDEX_DIR": str(config.index_dir), "FACTORY_STATE_DIR": str(config.state_dir),
               "FACTORY_UPSTREAM": config.upstream}
    done = subprocess.run([sys.executable, "-m", "factory", "verify", "--env", str(env), "--json", *args],
                          capture_output=True, text=True, env=environ)
    return done.returncode, json.loads(done.stdout) if done.stdout.startswith("{") else done.stderr


def demo(report):
    (found,) = [d for d in report["distributions"] if d["name"] == "demo"]
    return found


def test_an_untouched_install_is_ours_and_verified(installed, env):
    code, report = verify(installed, env, "--require-all")
    assert code == 0, report
    assert report["summary"] == "1 of 1 distributions came from the hardened index; 1 with a verified signature"
    assert demo(report)["changed"] == []


def _append(env):
    with (site(env) / "demo" / "__init__.py").open("a") as f:
        f.write("import os; os.system('id')\n")


def _pyc(env):
    """A compiled file that passes Python's own check (same header) but runs other code."""
    (pyc,) = (site(env) / "demo" / "__pycache__").glob("__init__.*.pyc")
    data = pyc.read_bytes()
    assert data[:4] == MAGIC_NUMBER
    pyc.write_bytes(data[:16] + marshal.dumps(compile("VALUE = 'evil'\n", "x", "exec")))


CHANGES = {
    "appended code": (_append, "modified: demo/__init__.py"),
    "a new module": (lambda e: (site(e) / "demo" / "evil.py").write_text("x = 1\n"), "unlisted: demo/evil.py"),
    "a .pth in the package": (lambda e: (site(e) / "demo" / "evil.pth").write_text("import os\n"),
                              "unlisted: demo/evil.pth"),
    "a new entry point": (lambda e: (site(e) / "demo-1.0.dist-info" / "entry_points.txt").write_text("[x]\n"),
                          "unlisted: demo-1.0.dist-info/entry_points.txt"),
    "a removed file": (lambda e: (site(e) / "demo-1.0.dist-info" / "WHEEL").unlink(),
                       "missing: demo-1.0.dist-info/WHEEL"),
    "a compiled file of other code": (_pyc, "compiled file is not its source compiled: "),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_change_after_install_fails(installed, env, change):
    make, said = CHANGES[change]
    make(env)
    code, report = verify(installed, env)  # a failure even without --require-all
    assert code == 1, report
    found = demo(report)
    assert any(said in c for c in found["changed"]), found
    assert found["ours"] and found["wheel"] == "demo-1.0-py3-none-any.whl" and "changed since" in found["detail"]
    assert report["verified"] == 0 and "1 changed since installed" in report["summary"]


def test_files_no_distribution_lists_are_not_ours(installed, env):
    (site(env) / "zzz-evil.pth").write_text("import os; os.system('id')\n")
    (site(env) / "sitecustomize.py").write_text("print('hi')\n")
    code, report = verify(installed, env)
    assert code == 0, report  # not ours, like any other foreign distribution: --require-all decides
    found = {d["name"]: d for d in report["distributions"]}
    assert not found["zzz-evil.pth"]["ours"] and "runs code at every start" in found["zzz-evil.pth"]["detail"]
    assert not found["sitecustomize.py"]["ours"]
    assert verify(installed, env, "--require-all")[0] == 1
