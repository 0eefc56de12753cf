"""Signed certificate timestamps (RFC 6962) built by hand: cryptography can parse SCTs but not make them."""

from __future__ import annotations

import struct

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from factory.sigstore_stack.keys import key_id

SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_V1 = 0
_CERTIFICATE_TIMESTAMP = 0
_PRECERT_ENTRY = 1
_SHA256 = 4
_ECDSA = 3


def _opaque(data: bytes, length_bytes: int) -> bytes:
    """``data`` prefixed by its big-endian length in ``length_bytes`` bytes (a TLS ``opaque<..>``)."""
    if len(data) >= 1 << (8 * length_bytes):
        raise ValueError(f"{len(data)} bytes do not fit a {length_bytes}-byte length")
    return len(data).to_bytes(length_bytes, "big") + data


def precert_sct(log_key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePublicKey,
                tbs_precertificate: bytes, timestamp_ms: int) -> bytes:
    """A v1 SCT, TLS-encoded, by the log holding ``log_key`` for a precertificate entry: its signature
    covers the timestamp, the hash of the issuer's public key and the certificate's TBS without the SCT
    list extension (``tbs_precertificate``)."""
    extensions = b""
    signed = (struct.pack("!BBQH", _V1, _CERTIFICATE_TIMESTAMP, timestamp_ms, _PRECERT_ENTRY)
              + key_id(issuer_key) + _opaque(tbs_precertificate, 3) + _opaque(extensions, 2))
    signature = log_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    return (struct.pack("!B", _V1) + key_id(log_key.public_key()) + struct.pack("!Q", timestamp_ms)
            + _opaque(extensions, 2) + struct.pack("!BB", _SHA256, _ECDSA) + _opaque(signature, 2))


def sct_list_extension(scts: list[bytes]) -> x509.UnrecognizedExtension:
    """The certificate extension carrying ``scts``: a DER OCTET STRING around the TLS SCT list."""
    tls_list = _opaque(b"".join(_opaque(sct, 2) for sct in scts), 2)
    return x509.UnrecognizedExtension(SCT_LIST_OID, asn1.encode_der(tls_list))
