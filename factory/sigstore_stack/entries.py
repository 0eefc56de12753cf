"""Rekor v1 entry kinds: check a proposed hashedrekord or dsse (0.0.1) entry and make its canonical body."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from factory.sigstore_stack.errors import EntryRejected

_DIGESTS: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
_CURVE_HASHES: dict[str, hashes.HashAlgorithm] = {
    "secp256r1": hashes.SHA256(), "secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}


def canonical_body(proposed: Any) -> bytes:
    """The RFC 8785 body the log stores for the proposed entry ``proposed`` (the JSON the client posts).

    Raises ``EntryRejected`` if the entry is malformed, not hashedrekord or dsse 0.0.1, or a signature in
    it does not verify with the key or certificate it names."""
    try:
        kind, version, spec = proposed["kind"], proposed["apiVersion"], proposed["spec"]
        if (kind, version) == ("hashedrekord", "0.0.1"):
            body = _hashedrekord(spec)
        elif (kind, version) == ("dsse", "0.0.1"):
            body = _dsse(spec)
        else:
            raise EntryRejected(f"unsupported entry kind {kind!r} version {version!r}")
    except (KeyError, TypeError, ValueError, UnsupportedAlgorithm) as e:
        raise EntryRejected(f"malformed entry: {type(e).__name__}: {e}") from e
    return rfc8785.dumps(body)


def _hashedrekord(spec: dict[str, Any]) -> dict[str, Any]:
    algorithm, value = spec["data"]["hash"]["algorithm"], spec["data"]["hash"]["value"]
    signature = base64.b64decode(spec["signature"]["content"], validate=True)
    verifier = spec["signature"]["publicKey"]["content"]
    if algorithm not in _DIGESTS:
        raise EntryRejected(f"unsupported digest algorithm {algorithm!r}")
    digest = bytes.fromhex(value)
    if len(digest) != _DIGESTS[algorithm].digest_size:
        raise EntryRejected(f"a {algorithm} digest has {_DIGESTS[algorithm].digest_size} bytes, not {len(digest)}")
    try:
        _public_key(verifier).verify(signature, digest, ec.ECDSA(Prehashed(_DIGESTS[algorithm])))
    except InvalidSignature:
        raise EntryRejected("the signature does not verify with the given key") from None
    return {"apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {"data": {"hash": {"algorithm": algorithm, "value": digest.hex()}},
                     "signature": {"content": base64.b64encode(signature).decode(),
                                   "publicKey": {"content": verifier}}}}


def _dsse(spec: dict[str, Any]) -> dict[str, Any]:
    envelope_text, verifiers = spec["proposedContent"]["envelope"], spec["proposedContent"]["verifiers"]
    if not isinstance(envelope_text, str) or not isinstance(verifiers, list) or not verifiers:
        raise EntryRejected("a dsse entry needs an envelope string and at least one verifier")
    envelope = json.loads(envelope_text)
    payload, payload_type = _b64decode(envelope["payload"]), envelope["payloadType"]
    if not isinstance(payload_type, str) or not envelope["signatures"]:
        raise EntryRejected("the envelope needs a payload type and at least one signature")
    keys = [(verifier, _public_key(verifier)) for verifier in verifiers]
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type.encode()), payload_type.encode(), len(payload), payload)
    signatures = []
    for entry in envelope["signatures"]:
        signature = _b64decode(entry["sig"])
        verifier = next((v for v, key in keys if _verifies(key, signature, pae)), None)
        if verifier is None:
            raise EntryRejected("an envelope signature does not verify with any of the verifiers")
        signatures.append({"signature": base64.b64encode(signature).decode(), "verifier": verifier})
    signatures.sort(key=lambda s: s["signature"])
    return {"apiVersion": "0.0.1", "kind": "dsse",
            "spec": {"envelopeHash": {"algorithm": "sha256",
                                      "value": hashlib.sha256(envelope_text.encode()).hexdigest()},
                     "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                     "signatures": signatures}}


def _b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, as DSSE allows either."""
    if "-" in text or "_" in text:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _public_key(verifier: str) -> ec.EllipticCurvePublicKey:
    """The EC key in ``verifier``: base64 of a PEM certificate or PEM public key."""
    pem = base64.b64decode(verifier, validate=True)
    key: object
    if b"-----BEGIN CERTIFICATE-----" in pem:
        key = x509.load_pem_x509_certificate(pem).public_key()
    else:
        key = serialization.load_pem_public_key(pem)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _CURVE_HASHES:
        raise EntryRejected("only ECDSA keys on P-256, P-384 and P-521 are supported")
    return key


def _verifies(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data, ec.ECDSA(_CURVE_HASHES[key.curve.name]))
    except InvalidSignature:
        return False
    return True
