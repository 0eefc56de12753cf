"""Signing with the local stack trusts only the stack of its own state directory (issue 12,
items 2 and 6): the trust root is pinned from the state directory, the token secret goes only to
a stack that proves it holds that root's key, each state directory's stack runs on a port of its
own, and a build that could not be signed does not start."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import SIGNING_ENV
from support.signing import signed
from support.wheels import make_wheel

from factory import config as factory_config
from factory.failures import BuildFailure
from factory.index.distfile import inspect_wheel
from factory.pipeline.sign import SigningSettings, preflight
from factory.sigstore_stack import LocalSigstore
from factory.sigstore_stack.client import running_url
from factory.verify import SignatureCheck


def settings_for(root, local_index, **extra):
    """A config with its own state directory and nothing else about signing: what a user has."""
    env = {"FACTORY_STATE_DIR": str(root / "state"), "FACTORY_INDEX_DIR": str(root / "index"),
           "FACTORY_UPSTREAM": local_index.url, "FACTORY_SIGNING": "local", **extra}
    return factory_config.load(None, env)


class Impostor:
    """Whatever took the port: it answers like a stack and keeps every request it gets."""

    def __init__(self, trust_config):
        self.seen: list[str] = []
        impostor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, body):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                impostor.seen.append(f"GET {self.path} {self.headers}")
                self._answer({"trustConfig": trust_config, "issuer": "http://127.0.0.1:1/oidc"})

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                impostor.seen.append(f"POST {self.path} {self.headers} {body}")
                self._answer({"signature": "bm90IGEgc2lnbmF0dXJl", "id_token": "x"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def ours(tmp_path):
    """The state directory of a stack that ran once and is down now."""
    state = tmp_path / "state" / "sigstore"
    with LocalSigstore(state):
        pass
    return state


def test_the_secret_goes_to_no_stack_that_cannot_prove_it_holds_the_pinned_key(tmp_path, local_index, ours):
    """Issue 12, item 2: with trust-config unset the trust root was fetched from whatever answered
    on the port, and the token secret sent to it: a process that took the port while the stack
    was down received the secret, and signed wheels that verified."""
    with LocalSigstore(tmp_path / "other") as other:  # a whole other stack: it could sign, with its own keys
        impostor = Impostor(json.loads(other.trust_config_path.read_text()))
        secret = (ours / "token.secret").read_text().strip()
        for url in (impostor.url, other.url):
            cfg = settings_for(tmp_path, local_index, FACTORY_LOCAL_SIGSTORE=url)
            wheel = inspect_wheel(make_wheel(tmp_path / "w", "demo", "1.0"))
            with pytest.raises(BuildFailure, match="is not the Sigstore stack of") as refused:
                signed(cfg, [wheel])
            assert refused.value.failure_class == "signing"
        assert impostor.seen and not any(secret in request for request in impostor.seen)
        assert not any("/oidc/token" in request for request in impostor.seen)
    # Down, and no port named: nothing is asked of anyone.
    with pytest.raises(BuildFailure, match="no local Sigstore stack runs on"):
        preflight(SigningSettings.from_config(settings_for(tmp_path, local_index)))


def test_the_stack_of_the_state_directory_is_found_and_its_root_pinned(tmp_path, local_index, ours):
    cfg = settings_for(tmp_path, local_index)
    with LocalSigstore(ours) as stack:  # port 0: it says where it listens
        assert running_url(ours) == stack.url
        (dist,) = signed(cfg, [inspect_wheel(make_wheel(tmp_path / "w", "demo", "1.0"))])
    assert running_url(ours) is None
    check = SignatureCheck(SigningSettings.from_config(cfg))  # pinned from the state directory: no stack needed
    assert check.verify(dist.bundle, dist.filename, dist.sha256) is None


def factory(root, local_index, *args, **extra):
    env = {k: v for k, v in os.environ.items() if k not in SIGNING_ENV}
    env.update({"FACTORY_STATE_DIR": str(root / "state"), "FACTORY_INDEX_DIR": str(root / "index"),
                "FACTORY_UPSTREAM": local_index.url, "FACTORY_ARCHS": "x86_64", "FACTORY_PYTHONS": "3.11", **extra})
    return subprocess.run([sys.executable, "-m", "factory", *args], capture_output=True, text=True, env=env, timeout=120)


def test_two_state_directories_sign_side_by_side(tmp_path, local_index):
    """Issue 12, item 6: the stack of one state directory answered for the other, whose every
    target then failed at signing: two factories could not both work on one host."""
    roots = [tmp_path / "one", tmp_path / "two"]
    started = []
    try:
        for root in roots:
            done = factory(root, local_index, "sigstore-stack", "--background")
            assert done.returncode == 0 and "started the Sigstore stack of" in done.stdout, done.stdout + done.stderr
            started.append(json.loads((root / "state" / "sigstore" / "running.json").read_text()))
        assert started[0]["url"] != started[1]["url"]
        for root in roots:
            (dist,) = signed(settings_for(root, local_index), [inspect_wheel(make_wheel(root / "w", "demo", "1.0"))])
            issuer = json.loads((root / "state" / "sigstore" / "stack.json").read_text())["issuer"]
            assert json.loads(dist.provenance)["attestation_bundles"][0]["publisher"]["claims"]["issuer"] == issuer
        again = factory(roots[0], local_index, "sigstore-stack", "--background")
        assert "is running" in again.stdout
    finally:
        for info in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(info["pid"], signal.SIGTERM)


def test_a_build_that_could_not_be_signed_does_not_start(tmp_path, local_index, ours):
    """Issue 12, item 6: the build ran, and only then every target failed at signing."""
    with LocalSigstore(tmp_path / "other") as other:
        done = factory(tmp_path, local_index, "build", "fixture-badhash==1.0.0", FACTORY_LOCAL_SIGSTORE=other.url)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "signing cannot succeed, so nothing is built" in done.stderr and "is not the Sigstore stack of" in done.stderr
    assert not (tmp_path / "state" / "records").exists()  # not even resolved
