"""`factory upload`: what the index holds, into a hosted repository, through the upload API
twine uses. Against a real devpi-server: after the upload, unpinned pip and uv installs through
devpi's inheriting index (the hosted stage first, a mirror of the upstream second) get our
wheels, and `factory verify --env --require-all` passes. Only what the target lacks is sent,
a second run sends nothing, an interrupted run resumes, other bytes under our name are a
conflict; attestations go where the target takes them."""

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import _config
from support.devpi import ROOT_PASSWORD, Devpi
from support.index_server import LocalIndex
from support.installers import pip_venv, uv_venv, values
from support.sdists import make_sdist
from support.signing import signed
from support.upload_target import UploadTarget
from support.wheels import make_wheel

from factory.index.distfile import inspect_sdist, inspect_wheel
from factory.index.publish import publish, yank
from factory.upload import credentials
from factory.upload.run import Result, Selection, SelectionError, journal_path, upload
from factory.upload.target import TargetError

ROOT = credentials.Credentials("root", ROOT_PASSWORD, "test")


def factory(cfg, *args, env=None):
    """`factory ARGS` as a user runs it, with this config's index and state."""
    full = {**os.environ, "FACTORY_INDEX_DIR": str(cfg.index_dir), "FACTORY_STATE_DIR": str(cfg.state_dir),
            "FACTORY_UPSTREAM": cfg.upstream, **(env or {})}
    for key in ("FACTORY_UPLOAD_USERNAME", "FACTORY_UPLOAD_PASSWORD", "TWINE_USERNAME", "TWINE_PASSWORD"):
        if env is None or key not in env:
            full.pop(key, None)
    return subprocess.run([sys.executable, "-m", "factory", *args], capture_output=True, text=True, env=full)


UPLOAD_ENV = {"FACTORY_UPLOAD_USERNAME": "root", "FACTORY_UPLOAD_PASSWORD": ROOT_PASSWORD}


@pytest.fixture(scope="module")
def devpi(tmp_path_factory):
    with Devpi(tmp_path_factory.mktemp("devpi")) as server:
        yield server


@pytest.fixture(scope="module")
def ours(tmp_path_factory, sigstore_stack, local_index):
    """Our index: demo-alpha 1.0 (wheel and sdist), demo-beta 1.0 and 1.1 (yanked here), demo-gamma
    1.0 (needs demo-alpha); all signed."""
    root = tmp_path_factory.mktemp("ours")
    cfg = _config(local_index, root, sigstore_stack)
    w = root / "w"
    dists = [inspect_wheel(make_wheel(w, "demo-alpha", "1.0", body="ours")),
             inspect_sdist(make_sdist("fixture-pure", "1.0", w, name="demo-alpha", metadata_version="2.2")),
             inspect_wheel(make_wheel(w, "demo-beta", "1.0", body="ours")),
             inspect_wheel(make_wheel(w, "demo-beta", "1.1", body="ours")),
             inspect_wheel(make_wheel(w, "demo-gamma", "1.0", body="ours", requires=("demo-alpha",)))]
    publish(cfg.index_dir, signed(cfg, dists), "")
    yank(cfg.index_dir, "demo-beta", "1.1", "broken", "")
    return cfg


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """The public index as the tests see it: the same names with other bytes, newer releases,
    and a wheel with a more specific tag than ours."""
    w = tmp_path_factory.mktemp("upstream")
    with LocalIndex() as index:
        index.add_file("demo-alpha", make_wheel(w / "a", "demo-alpha", "1.0", body="upstream"))
        index.add_file("demo-alpha", make_wheel(w / "b", "demo-alpha", "2.0", body="upstream"))
        index.add_file("demo-beta", make_wheel(w / "c", "demo-beta", "1.0", body="upstream",
                                               tag="py3-none-manylinux_2_17_x86_64"))
        index.add_file("demo-beta", make_wheel(w / "d", "demo-beta", "1.1", body="upstream"))
        index.add_file("demo-gamma", make_wheel(w / "e", "demo-gamma", "3.0", body="upstream"))
        yield index


def stage(devpi, upstream, name):
    """A hosted stage ``root/<name>`` and ``root/<name>-merged`` inheriting from it first and a
    mirror of the upstream second; the hosted stage's upload URL and the merged simple URL."""
    mirror = f"root/{name}-upstream"
    devpi.client("index", "-c", mirror, "type=mirror", f"mirror_url={upstream.url}")
    devpi.client("index", "-c", f"root/{name}", "bases=", "volatile=False")
    devpi.client("index", "-c", f"root/{name}-merged", f"bases=root/{name},{mirror}")
    return f"{devpi.url}/root/{name}/", devpi.simple(f"root/{name}-merged")


MODULES = ("demo_alpha", "demo_beta", "demo_gamma")


def test_after_upload_unpinned_pip_and_uv_get_ours_through_the_inheriting_index(ours, devpi, upstream, tmp_path):
    upload_url, merged = stage(devpi, upstream, "hosted")
    before = pip_venv(tmp_path / "before", merged, "demo-alpha", "demo-beta", "demo-gamma")
    assert before.returncode == 0, before.stderr
    assert values(tmp_path / "before" / "bin" / "python", *MODULES) == ["upstream"] * 3  # newer and more specific

    done = factory(ours, "upload", upload_url, env=UPLOAD_ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 uploaded, 0 already there, 0 conflicts, 0 failed" in done.stdout  # the yanked 1.1 stays here
    assert "demo_beta-1.1-py3-none-any.whl" not in done.stdout

    for installer, path in ((pip_venv, tmp_path / "pip"), (uv_venv, tmp_path / "uv")):
        installed = installer(path, merged, "demo-alpha", "demo-beta", "demo-gamma")
        assert installed.returncode == 0, installed.stderr
        assert values(path / "bin" / "python", *MODULES) == ["ours"] * 3
        verified = factory(ours, "verify", "--env", str(path), "--require-all")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "3 of 3" in verified.stdout
    # The version we yanked is not there to be pinned, rather than taken from the upstream.
    pinned = pip_venv(tmp_path / "pinned", merged, "demo-beta==1.1")
    assert pinned.returncode != 0 and "demo-beta==1.1" in pinned.stderr

    again = factory(ours, "upload", upload_url, "--json", env=UPLOAD_ENV)
    assert again.returncode == 0, again.stderr
    results = {f["filename"]: f["result"] for f in json.loads(again.stdout)["files"]}
    assert set(results.values()) == {"present"} and len(results) == 4


#: `factory upload ARGS`, stopped by the test's word rather than its clock: once the journal has
#: ``after`` files, the upload says so and waits to be killed.
PAUSED_UPLOAD = """
import os, sys
from factory.cli import main
from factory.upload.run import Journal

record = Journal.record
def counted(self, filename, sha256):
    record(self, filename, sha256)
    if len(self.sent) == {after}:
        print("paused", flush=True)
        sys.stdin.read()  # the test kills us here; should it go away instead, stop, never go on
        os._exit(3)
Journal.record = counted
raise SystemExit(main(sys.argv[1:]))
"""


def test_an_interrupted_upload_resumes_where_it_stopped(devpi, upstream, tmp_path, sigstore_stack, local_index):
    cfg = _config(local_index, tmp_path / "many", sigstore_stack)
    publish(cfg.index_dir, [inspect_wheel(make_wheel(tmp_path / "w", f"demo-many-{i}", "1.0")) for i in range(40)], "")
    upload_url, _ = stage(devpi, upstream, "resume")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTORY_UPLOAD", "TWINE_"))}
    env.update(UPLOAD_ENV, FACTORY_INDEX_DIR=str(cfg.index_dir), FACTORY_STATE_DIR=str(cfg.state_dir),
               FACTORY_UPSTREAM=cfg.upstream)
    command = [sys.executable, "-c", PAUSED_UPLOAD.format(after=5), "upload", upload_url, "-j", "1"]
    proc = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    paused = any(line.strip() == "paused" for line in proc.stdout)  # stops reading at its word
    assert paused, "the upload ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sent = len(journal_path(cfg.state_dir, upload_url).read_text().splitlines())
    assert sent == 5
    report = upload(cfg.index_dir, cfg.state_dir, upload_url, credentials=ROOT)
    assert report.ok, report.problems
    assert report.count(Result.PRESENT) >= sent and report.count(Result.UPLOADED) + report.count(Result.PRESENT) == 40
    again = upload(cfg.index_dir, cfg.state_dir, upload_url, credentials=ROOT)
    assert again.count(Result.PRESENT) == 40 and again.count(Result.UPLOADED) == 0


def test_other_bytes_under_our_name_are_a_conflict_never_overwritten(devpi, upstream, tmp_path, sigstore_stack,
                                                                     local_index):
    upload_url, _ = stage(devpi, upstream, "conflict")
    theirs = _config(local_index, tmp_path / "theirs", sigstore_stack)
    publish(theirs.index_dir, [inspect_wheel(make_wheel(tmp_path / "t", "demo-clash", "1.0", body="theirs"))], "")
    assert upload(theirs.index_dir, theirs.state_dir, upload_url, credentials=ROOT).ok
    cfg = _config(local_index, tmp_path / "ours", sigstore_stack)
    publish(cfg.index_dir, [inspect_wheel(make_wheel(tmp_path / "o", "demo-clash", "1.0", body="ours")),
                            inspect_wheel(make_wheel(tmp_path / "o", "demo-clash", "1.1", body="ours"))], "")
    done = factory(cfg, "upload", upload_url, env=UPLOAD_ENV)
    assert done.returncode == 1
    assert "conflict demo_clash-1.0-py3-none-any.whl: the repository holds other bytes under this name" in done.stdout
    assert "1 uploaded, 0 already there, 1 conflicts" in done.stdout  # the rest still went
    python = tmp_path / "venv"
    assert pip_venv(python, devpi.simple("root/conflict"), "demo-clash==1.0").returncode == 0
    assert values(python / "bin" / "python", "demo_clash") == ["theirs"]


def test_wrong_credentials_stop_the_upload_and_report_nothing_done(ours, devpi, upstream):
    upload_url, _ = stage(devpi, upstream, "denied")
    done = factory(ours, "upload", upload_url, env={"FACTORY_UPLOAD_USERNAME": "root",
                                                    "FACTORY_UPLOAD_PASSWORD": "wrong"})
    assert done.returncode == 2
    assert "refused our credentials" in done.stderr and "$FACTORY_UPLOAD_PASSWORD" in done.stderr
    assert "uploaded" not in done.stdout
    anonymous = factory(ours, "upload", upload_url)
    assert anonymous.returncode == 2 and "none were given: set FACTORY_UPLOAD_USERNAME" in anonymous.stderr


def test_credentials_from_netrc(ours, devpi, upstream, tmp_path):
    upload_url, _ = stage(devpi, upstream, "netrc")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login root password {ROOT_PASSWORD}\n")
    netrc.chmod(0o600)
    done = factory(ours, "upload", upload_url, "--project", "demo-gamma", env={"NETRC": str(netrc)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 uploaded" in done.stdout


def test_attestations_are_sent_and_a_target_that_refuses_them_still_gets_the_file(ours):
    with UploadTarget() as lenient:
        report = upload(ours.index_dir, ours.state_dir, lenient.url, simple_url=lenient.simple_url,
                        selection=Selection(projects=("demo-gamma",)), environ={})
        assert report.ok and report.outcomes[0].attestations == "sent"
        (fields,) = lenient.uploads
        (attestation,) = json.loads(fields["attestations"][0])
        assert attestation["version"] == 1 and "envelope" in attestation
        assert fields[":action"] == ["file_upload"] and fields["protocol_version"] == ["1"]
        assert fields["name"] == ["demo-gamma"] and fields["version"] == ["1.0"]
        assert fields["filetype"] == ["bdist_wheel"] and fields["pyversion"] == ["py3"]
        assert fields["requires_dist"] == ["demo-alpha"] and fields["requires_python"] == [">=3.8"]
    with UploadTarget(refuse_attestations=True) as strict:
        report = upload(ours.index_dir, ours.state_dir, strict.url, simple_url=strict.simple_url,
                        selection=Selection(projects=("demo-alpha",)), environ={})
        assert report.ok and report.count(Result.UPLOADED) == 2, report.outcomes
        assert {o.attestations for o in report.outcomes} == {"refused"}
        assert "2 sent without their attestations" in report.summary
        assert sorted(strict.files) == ["demo_alpha-1.0-py3-none-any.whl", "demo_alpha-1.0.tar.gz"]
        sdist = next(u for u in strict.uploads if u["_filename"] == ["demo_alpha-1.0.tar.gz"])
        assert sdist["filetype"] == ["sdist"] and sdist["pyversion"] == ["source"]


def test_a_target_whose_pages_lag_is_not_sent_the_same_file_twice(ours):
    with UploadTarget(lag=True) as lagging:
        first = upload(ours.index_dir, ours.state_dir, lagging.url, simple_url=lagging.simple_url, environ={})
        assert first.ok and first.count(Result.UPLOADED) == 4
        again = upload(ours.index_dir, ours.state_dir, lagging.url, simple_url=lagging.simple_url, environ={})
        assert again.ok and again.count(Result.PRESENT) == 4 and again.count(Result.UPLOADED) == 0
        assert all(o.detail.startswith("sent before") for o in again.outcomes)


def test_project_and_since_narrow_the_upload(ours, tmp_path):
    with UploadTarget() as target:
        later = upload(ours.index_dir, ours.state_dir, target.url, simple_url=target.simple_url, environ={},
                       selection=Selection(since="2999-01-01"))
        assert later.outcomes == ()
        beta = upload(ours.index_dir, ours.state_dir, target.url, simple_url=target.simple_url, environ={},
                      selection=Selection(projects=("Demo_Beta",), since="2000-01-01T00:00:00Z"))
        assert [o.filename for o in beta.outcomes] == ["demo_beta-1.0-py3-none-any.whl"]
    with pytest.raises(SelectionError, match="--project no-such-thing: not in the index"):
        upload(ours.index_dir, ours.state_dir, "http://127.0.0.1:9/", selection=Selection(projects=("no-such-thing",)))
    with pytest.raises(SelectionError, match="--since 'yesterday' is not an ISO 8601 date"):
        upload(ours.index_dir, ours.state_dir, "http://127.0.0.1:9/", selection=Selection(since="yesterday"))
    with pytest.raises(TargetError, match="cannot reach"):
        upload(ours.index_dir, ours.state_dir, "http://127.0.0.1:9/", environ={})


def test_credentials_come_from_the_environment_first(tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine repo.test login alice password from-netrc\n")
    env = {"NETRC": str(netrc)}
    assert credentials.find("https://repo.test/upload/", env).source.startswith(str(netrc))
    assert credentials.find("https://other.test/", env) is None
    found = credentials.find("https://repo.test/", {**env, "TWINE_PASSWORD": "tw"})
    assert (found.username, found.password, found.source) == ("__token__", "tw", "$TWINE_PASSWORD")
    found = credentials.find("https://repo.test/", {**env, "TWINE_PASSWORD": "tw", "FACTORY_UPLOAD_USERNAME": "ci",
                                                    "FACTORY_UPLOAD_PASSWORD": "fa"})
    assert (found.username, found.password) == ("ci", "fa")
    assert credentials.find("https://bob:pw@repo.test/", {}).username == "bob"
    assert credentials.without_userinfo("https://bob:pw@repo.test:8443/x/") == "https://repo.test:8443/x/"
    with pytest.raises(credentials.CredentialsError, match="FACTORY_UPLOAD_USERNAME is set but"):
        credentials.find("https://repo.test/", {"FACTORY_UPLOAD_USERNAME": "ci"})
