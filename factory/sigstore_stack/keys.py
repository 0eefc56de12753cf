"""The stack's long-lived keys: created once in the state directory, loaded on every later start."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only; a crash leaves the old file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The P-256 private key stored (PKCS#8 PEM) at ``path``, generated and stored first if absent."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{path} does not hold an EC private key")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return key


def spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of ``key``."""
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """The RFC 6962 key ID of ``key`` (SHA-256 of its SubjectPublicKeyInfo), Sigstore's log ID."""
    return hashlib.sha256(spki_der(key)).digest()
