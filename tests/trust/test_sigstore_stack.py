"""The local Sigstore stack, driven by the real sigstore client, verifier and CLI (no mocks).

Every tamper test changes exactly one thing in a bundle (or the policy, or the trusted root) that the
untampered case verifies with, and expects the real verifier to reject it at the intended check.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pypi_attestations import Attestation, AttestationType, Distribution
from sigstore._internal.fulcio.client import FulcioClientError
from sigstore._internal.merkle import _chain_border_right, _chain_inner, _decomp_inclusion_proof
from sigstore.dsse import DigestSet, Statement, StatementBuilder, Subject
from sigstore.errors import VerificationError
from sigstore.models import Bundle, ClientTrustConfig, InvalidBundle
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity, OIDCIssuerV2
from support.wheels import make_wheel

from factory.sigstore_stack import (
    LocalSigstore,
    StateDirBusy,
    StateDirCorrupt,
    TokenRequestFailed,
    fetch_identity_token,
)
from factory.sigstore_stack.merkle import MerkleTree, leaf_hash

EMAIL = "factory@localhost"
ARTIFACT = b"the bytes of an artifact\n"


def _config(stack: LocalSigstore) -> ClientTrustConfig:
    return ClientTrustConfig.from_json(stack.trust_config_path.read_text())


def _statement(name: str, data: bytes) -> Statement:
    return (StatementBuilder()
            .subjects([Subject(name=name, digest=DigestSet(root={"sha256": hashlib.sha256(data).hexdigest()}))])
            .predicate_type("https://factory.invalid/build/v1")
            .predicate({"builder": "factory", "recipe": "default"})
            .build())


@dataclasses.dataclass
class Signed:
    artifact: Bundle  # sign_artifact(ARTIFACT)
    dsse: Bundle  # sign_dsse(a statement about ARTIFACT)
    other_cert_artifact: Bundle  # same identity, another signer (another key and certificate)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSigstore]:
    with LocalSigstore(tmp_path_factory.mktemp("sigstore-state")) as s:
        yield s


@pytest.fixture(scope="module")
def config(stack: LocalSigstore) -> ClientTrustConfig:
    return _config(stack)


@pytest.fixture(scope="module")
def verifier(config: ClientTrustConfig) -> Verifier:
    return Verifier(trusted_root=config.trusted_root)


@pytest.fixture(scope="module")
def policy(stack: LocalSigstore) -> Identity:
    return Identity(identity=EMAIL, issuer=stack.issuer)


@pytest.fixture(scope="module")
def signed(stack: LocalSigstore, config: ClientTrustConfig) -> Signed:
    ctx = SigningContext.from_trust_config(config)
    with ctx.signer(IdentityToken(stack.identity_token(EMAIL))) as signer:
        signer.sign_artifact(b"an earlier entry, so that later proofs have hashes")
        artifact = signer.sign_artifact(ARTIFACT)
        dsse = signer.sign_dsse(_statement("artifact.bin", ARTIFACT))
    with ctx.signer(IdentityToken(stack.identity_token(EMAIL))) as other:
        other_cert_artifact = other.sign_artifact(ARTIFACT)
    return Signed(artifact, dsse, other_cert_artifact)


def _edit(bundle: Bundle, change: Callable[[dict[str, Any]], None]) -> Bundle:
    """``bundle`` with ``change`` applied to its JSON form."""
    data = json.loads(bundle.to_json())
    change(data)
    return Bundle.from_json(json.dumps(data))


def _entry(data: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = data["verificationMaterial"]["tlogEntries"][0]
    return entry


# -- the happy paths --------------------------------------------------------------------------------------


def test_identity_token_is_signed_by_the_published_key(stack: LocalSigstore) -> None:
    token = stack.identity_token("someone@localhost", lifetime=60)
    discovery = httpx.get(f"{stack.url}/.well-known/openid-configuration").json()
    assert discovery["issuer"] == stack.issuer
    jwks = httpx.get(discovery["jwks_uri"]).json()
    key = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(token, key, algorithms=["ES256"], audience="sigstore", issuer=stack.issuer)
    assert claims["email"] == claims["sub"] == "someone@localhost"
    assert claims["email_verified"] is True
    assert claims["exp"] - claims["iat"] == 60 and claims["nbf"] == claims["iat"]


def test_fetch_identity_token_over_http(stack: LocalSigstore) -> None:
    secret = stack.token_secret_path.read_text().strip()
    assert stack.token_secret_path.stat().st_mode & 0o777 == 0o600
    token = IdentityToken(fetch_identity_token(stack.url, "remote@localhost", secret))
    assert token.identity == "remote@localhost"
    assert token.issuer == stack.issuer
    refused = httpx.post(f"{stack.url}/oidc/token", json={"email": "not an address"},
                         headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 400


def test_tokens_only_for_whoever_holds_the_secret(stack: LocalSigstore) -> None:
    # A build container on the host network reaches 127.0.0.1, but not the state directory.
    for headers in ({}, {"Authorization": "Bearer guessed"}, {"Authorization": "Basic x"}):
        refused = httpx.post(f"{stack.url}/oidc/token", json={"email": "factory@localhost"}, headers=headers)
        assert refused.status_code == 401, headers
    with pytest.raises(TokenRequestFailed):
        fetch_identity_token(stack.url, "factory@localhost", "wrong")


@pytest.mark.parametrize("secret", ["", "\n", "short\n"])
def test_an_empty_or_short_secret_opens_nothing(tmp_path: Path, secret: str) -> None:
    """Issue 12, item 13: an empty token.secret accepted `Authorization: Bearer ` and issued a token."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "token.secret").write_text(secret)
    with pytest.raises(StateDirCorrupt, match="token.secret holds (no|too short a) secret"):
        LocalSigstore(state).start()
    (state / "token.secret").unlink()  # as the error says: then the stack makes a new one
    with LocalSigstore(state) as stack:
        # httpx refuses a header value ending in a space: send it as the reviewer did, by hand.
        conn = http.client.HTTPConnection("127.0.0.1", int(stack.url.rsplit(":", 1)[1]), timeout=10)
        conn.request("POST", "/oidc/token", body=json.dumps({"email": EMAIL}),
                     headers={"Authorization": "Bearer ", "Content-Type": "application/json"})
        assert conn.getresponse().status == 401
        conn.close()


def test_sign_artifact_verifies(signed: Signed, verifier: Verifier, policy: Identity) -> None:
    verifier.verify_artifact(ARTIFACT, signed.artifact, policy)
    verifier.verify_artifact(ARTIFACT, Bundle.from_json(signed.artifact.to_json()), policy)


def test_sign_dsse_verifies(stack: LocalSigstore, signed: Signed, verifier: Verifier, policy: Identity) -> None:
    payload_type, payload = verifier.verify_dsse(signed.dsse, policy)
    assert payload_type == "application/vnd.in-toto+json"
    statement = json.loads(payload)
    digest = hashlib.sha256(ARTIFACT).hexdigest()
    assert statement["subject"] == [{"name": "artifact.bin", "digest": {"sha256": digest}}]
    assert statement["predicate"] == {"builder": "factory", "recipe": "default"}
    cert = signed.dsse.signing_certificate
    OIDCIssuerV2(stack.issuer).verify(cert)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(minutes=10)
    assert _entry(json.loads(signed.dsse.to_json()))["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}


# -- tampering the real verifier must reject -------------------------------------------------------------


def test_rejects_changed_artifact_byte(signed: Signed, verifier: Verifier, policy: Identity) -> None:
    changed = bytes([ARTIFACT[0] ^ 1]) + ARTIFACT[1:]
    with pytest.raises(VerificationError, match="digest mismatch"):
        verifier.verify_artifact(changed, signed.artifact, policy)


def test_rejects_changed_dsse_payload(signed: Signed, verifier: Verifier, policy: Identity) -> None:
    def change(data: dict[str, Any]) -> None:
        statement = json.loads(base64.b64decode(data["dsseEnvelope"]["payload"]))
        statement["subject"][0]["digest"]["sha256"] = "0" * 64
        data["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    with pytest.raises(VerificationError, match="DSSE: invalid signature"):
        verifier.verify_dsse(_edit(signed.dsse, change), policy)


def test_rejects_changed_certificate(signed: Signed, verifier: Verifier, policy: Identity) -> None:
    # A valid certificate from the same CA for the same identity, but for another key.
    other = json.loads(signed.other_cert_artifact.to_json())["verificationMaterial"]["certificate"]

    def change(data: dict[str, Any]) -> None:
        data["verificationMaterial"]["certificate"] = other

    with pytest.raises(VerificationError, match="Signature is invalid"):
        verifier.verify_artifact(ARTIFACT, _edit(signed.artifact, change), policy)


def test_rejects_changed_integrated_time(signed: Signed, verifier: Verifier, policy: Identity) -> None:
    def change(data: dict[str, Any]) -> None:
        _entry(data)["integratedTime"] = str(int(_entry(data)["integratedTime"]) + 1)

    with pytest.raises(VerificationError, match="inclusion promise"):
        verifier.verify_artifact(ARTIFACT, _edit(signed.artifact, change), policy)


def test_rejects_broken_inclusion_proof(signed: Signed, verifier: Verifier, policy: Identity) -> None:
    def change(data: dict[str, Any]) -> None:
        hashes_ = _entry(data)["inclusionProof"]["hashes"]
        assert hashes_, "the proof needs a hash to break"
        raw = bytearray(base64.b64decode(hashes_[0]))
        raw[0] ^= 1
        hashes_[0] = base64.b64encode(bytes(raw)).decode()

    with pytest.raises(VerificationError, match="inclusion proof"):
        verifier.verify_artifact(ARTIFACT, _edit(signed.artifact, change), policy)


def test_rejects_changed_checkpoint(signed: Signed, verifier: Verifier, policy: Identity) -> None:
    def change(data: dict[str, Any]) -> None:
        checkpoint = _entry(data)["inclusionProof"]["checkpoint"]
        origin, size, rest = checkpoint["envelope"].split("\n", 2)
        checkpoint["envelope"] = f"{origin}\n{int(size) + 1}\n{rest}"

    with pytest.raises(VerificationError, match="checkpoint: invalid signature"):
        verifier.verify_artifact(ARTIFACT, _edit(signed.artifact, change), policy)


def test_rejects_wrong_identity(stack: LocalSigstore, signed: Signed, verifier: Verifier) -> None:
    with pytest.raises(VerificationError, match="SANs do not match"):
        verifier.verify_dsse(signed.dsse, Identity(identity="someone-else@localhost", issuer=stack.issuer))


def test_rejects_wrong_issuer(signed: Signed, verifier: Verifier) -> None:
    with pytest.raises(VerificationError, match="OIDCIssuer does not match"):
        verifier.verify_dsse(signed.dsse, Identity(identity=EMAIL, issuer="http://127.0.0.1:1/oidc"))


def test_rejects_other_trusted_root(tmp_path: Path, signed: Signed, policy: Identity) -> None:
    with LocalSigstore(tmp_path / "other") as other:
        other_verifier = Verifier(trusted_root=_config(other).trusted_root)
    with pytest.raises(VerificationError, match="certificate chain"):
        other_verifier.verify_dsse(signed.dsse, policy)


def test_rejects_bundle_without_log_entry(signed: Signed) -> None:
    def change(data: dict[str, Any]) -> None:
        data["verificationMaterial"]["tlogEntries"] = []

    with pytest.raises(InvalidBundle, match="exactly one log entry"):
        _edit(signed.dsse, change)


def test_ca_refuses_forged_token(stack: LocalSigstore, config: ClientTrustConfig) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    genuine = jwt.decode(stack.identity_token(EMAIL), options={"verify_signature": False})
    forged = jwt.encode(genuine, forger, algorithm="ES256")
    with pytest.raises(FulcioClientError), SigningContext.from_trust_config(config).signer(IdentityToken(forged)):
        pass
    csr = _csr(ec.generate_private_key(ec.SECP256R1()))
    assert _signing_cert(stack, forged, csr).status_code == 401
    assert _signing_cert(stack, stack.identity_token(EMAIL), csr).status_code == 201


def test_ca_refuses_tokens_for_other_issuers_audiences_or_times(stack: LocalSigstore) -> None:
    key = serialization.load_pem_private_key((stack.state_dir / "keys" / "oidc.pem").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    now = int(time.time())
    good = {"iss": stack.issuer, "sub": EMAIL, "email": EMAIL, "email_verified": True, "aud": "sigstore",
            "iat": now, "nbf": now, "exp": now + 60}
    csr = _csr(ec.generate_private_key(ec.SECP256R1()))
    assert _signing_cert(stack, jwt.encode(good, key, algorithm="ES256"), csr).status_code == 201
    for bad in ({"iss": "http://127.0.0.1:1/oidc"}, {"aud": "other"}, {"exp": now - 60, "iat": now - 120},
                {"email_verified": False}, {"email": None}):
        token = jwt.encode({**good, **bad}, key, algorithm="ES256")
        assert _signing_cert(stack, token, csr).status_code == 401, bad
    assert httpx.post(f"{stack.url}/api/v2/signingCert", json={"certificateSigningRequest": csr}).status_code == 401


def test_ca_refuses_bad_csrs(stack: LocalSigstore) -> None:
    token = stack.identity_token(EMAIL)
    assert _signing_cert(stack, token, base64.b64encode(b"not a CSR").decode()).status_code == 400
    assert _signing_cert(stack, token, "!!not base64!!").status_code == 400
    # A CSR whose self-signature does not verify proves no possession of the key.
    der = bytearray(x509.load_pem_x509_csr(base64.b64decode(_csr(ec.generate_private_key(ec.SECP256R1()))))
                    .public_bytes(serialization.Encoding.DER))
    der[-3] ^= 1
    pem = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    assert _signing_cert(stack, token, base64.b64encode(pem).decode()).status_code == 400


def test_log_refuses_entries_whose_signature_does_not_verify(stack: LocalSigstore) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(b"data").digest()
    signature = key.sign(hashlib.sha256(b"other data").digest(), ec.ECDSA(hashes.SHA256()))
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    entry = {"apiVersion": "0.0.1", "kind": "hashedrekord",
             "spec": {"data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                      "signature": {"content": base64.b64encode(signature).decode(),
                                    "publicKey": {"content": base64.b64encode(pem).decode()}}}}
    size = httpx.get(f"{stack.url}/api/v1/log").json()["treeSize"]
    assert httpx.post(f"{stack.url}/api/v1/log/entries", json=entry).status_code == 400
    assert httpx.post(f"{stack.url}/api/v1/log/entries", json={"kind": "rekord"}).status_code == 400
    assert httpx.get(f"{stack.url}/api/v1/log").json()["treeSize"] == size


def _csr(key: ec.EllipticCurvePrivateKey) -> str:
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


def _signing_cert(stack: LocalSigstore, token: str, csr: str) -> httpx.Response:
    return httpx.post(f"{stack.url}/api/v2/signingCert", json={"certificateSigningRequest": csr},
                      headers={"Authorization": f"Bearer {token}"})


# -- persistence, the CLI, pypi-attestations, another process --------------------------------------------


def test_restart_keeps_the_log_and_the_trusted_root(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with LocalSigstore(state) as first:
        issuer = first.issuer
        with SigningContext.from_trust_config(_config(first)).signer(IdentityToken(first.identity_token())) as s:
            s.sign_artifact(b"first")
            old = s.sign_dsse(_statement("old.whl", b"old"))
        with pytest.raises(StateDirBusy):
            LocalSigstore(state).start()
    old_index = old.log_entry._inner.log_index

    with LocalSigstore(state) as second:
        assert second.issuer == issuer
        config = _config(second)
        verifier = Verifier(trusted_root=config.trusted_root)
        policy = Identity(identity=EMAIL, issuer=second.issuer)
        verifier.verify_dsse(old, policy)
        with SigningContext.from_trust_config(config).signer(IdentityToken(second.identity_token())) as s:
            new = s.sign_artifact(b"new")
        assert new.log_entry._inner.log_index == old_index + 1
        assert new.log_entry._inner.inclusion_proof.tree_size == old_index + 2
        verifier.verify_artifact(b"new", new, policy)
        # The old entry, fetched again, is proven against the grown tree.
        answer = httpx.get(f"{second.url}/api/v1/log/entries", params={"logIndex": old_index}).json()
        (entry,) = answer.values()
        assert entry["verification"]["inclusionProof"]["treeSize"] == old_index + 2
        assert entry["body"] == base64.b64encode(old.log_entry._inner.canonicalized_body).decode()


def test_restart_drops_a_torn_last_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with LocalSigstore(state) as first, SigningContext.from_trust_config(_config(first)).signer(
            IdentityToken(first.identity_token())) as signer:
        signer.sign_artifact(b"kept")
    log = state / "rekor" / "entries.jsonl"
    with log.open("ab") as f:
        f.write(b'{"body": "eyJ')  # a crash in the middle of an append
    with LocalSigstore(state) as second:
        config = _config(second)
        with SigningContext.from_trust_config(config).signer(IdentityToken(second.identity_token())) as signer:
            bundle = signer.sign_artifact(b"after the crash")
        assert bundle.log_entry._inner.log_index == 1
        Verifier(trusted_root=config.trusted_root).verify_artifact(
            b"after the crash", bundle, Identity(identity=EMAIL, issuer=second.issuer))
    assert len(log.read_bytes().splitlines()) == 2


def test_merkle_proofs_check_out_with_sigstores_verifier() -> None:
    tree = MerkleTree()
    for size in range(1, 34):
        tree.append(leaf_hash(b"entry %d" % (size - 1)))
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            inner, border = _decomp_inclusion_proof(index, size)
            assert len(proof) == inner + border
            chained = _chain_inner(leaf_hash(b"entry %d" % index), proof[:inner], index)
            assert _chain_border_right(chained, proof[inner:]) == tree.root(size), (index, size)
    assert tree.root(0) == hashlib.sha256(b"").digest()


def test_sigstore_cli_verifies_with_the_trust_config(tmp_path: Path, stack: LocalSigstore, signed: Signed) -> None:
    artifact, bundle = tmp_path / "artifact.bin", tmp_path / "artifact.bin.sigstore.json"
    artifact.write_bytes(ARTIFACT)
    bundle.write_text(signed.artifact.to_json())

    def cli() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sigstore", "--trust-config", str(stack.trust_config_path), "verify", "identity",
             "--bundle", str(bundle), "--cert-identity", EMAIL, "--cert-oidc-issuer", stack.issuer, str(artifact)],
            check=False, capture_output=True, text=True, timeout=60)

    ok = cli()
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stderr
    artifact.write_bytes(ARTIFACT + b"x")
    assert cli().returncode != 0


def test_pypi_attestation_of_a_wheel(tmp_path: Path, stack: LocalSigstore, config: ClientTrustConfig,
                                     verifier: Verifier, policy: Identity) -> None:
    wheel = make_wheel(tmp_path, "attested-pkg", "1.0")
    with SigningContext.from_trust_config(config).signer(IdentityToken(stack.identity_token(EMAIL))) as signer:
        attestation = Attestation.sign(signer, Distribution.from_file(wheel))
    bundle = Attestation.model_validate_json(attestation.model_dump_json()).to_bundle()
    payload_type, payload = verifier.verify_dsse(bundle, policy)
    assert payload_type == "application/vnd.in-toto+json"
    statement = json.loads(payload)
    assert statement["subject"] == [{"name": wheel.name,
                                     "digest": {"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}}]
    assert statement["predicateType"] == AttestationType.PYPI_PUBLISH_V1.value


def test_serve_in_another_process(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from factory.sigstore_stack import serve; "
            "serve(Path(sys.argv[1]), '127.0.0.1', 0, lambda line: print(line, flush=True))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "state")], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("sigstore stack at http://127.0.0.1:"), first
        url = first.split()[-1]
        secret = (tmp_path / "state" / "token.secret").read_text().strip()
        token = IdentityToken(fetch_identity_token(url, "worker@localhost", secret))
        assert token.identity == "worker@localhost"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert "stopping" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
