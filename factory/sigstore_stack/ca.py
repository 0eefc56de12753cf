"""A Fulcio-like certificate authority: short-lived code-signing certificates for OIDC identities."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from factory.plumbing.files import write_bytes
from factory.sigstore_stack.client import PROOF_CONTEXT
from factory.sigstore_stack.errors import CsrRejected, StackError, StateDirCorrupt
from factory.sigstore_stack.oidc import Identity
from factory.sigstore_stack.sct import precert_sct, sct_list_extension

LEAF_LIFETIME = datetime.timedelta(minutes=10)
ROOT_LIFETIME = datetime.timedelta(days=3650)
ROOT_SUBJECT = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "factory"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "factory sigstore root")])
OIDC_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_CURVE_HASHES: dict[type[ec.EllipticCurve], type[hashes.HashAlgorithm]] = {
    ec.SECP256R1: hashes.SHA256, ec.SECP384R1: hashes.SHA384, ec.SECP521R1: hashes.SHA512}


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                         crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def create_root(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """A self-signed root for ``key`` that may only sign leaves (path length 0), valid for ten years."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (x509.CertificateBuilder()
            .subject_name(ROOT_SUBJECT).issuer_name(ROOT_SUBJECT)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + ROOT_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256()))


def load_or_create_root(path: Path, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """The root certificate stored (PEM) at ``path``, created for ``key`` first if absent."""
    if path.exists():
        root = x509.load_pem_x509_certificate(path.read_bytes())
        if root.public_key() != key.public_key():
            raise StateDirCorrupt(f"{path} is not the certificate of the CA key")
        return root
    root = create_root(key)
    write_bytes(path, root.public_bytes(serialization.Encoding.PEM))
    return root


class CertificateAuthority:
    """Issues leaf certificates under ``root`` (whose key is ``key``), each with an SCT by ``ct_key``."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, root: x509.Certificate,
                 ct_key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self.root = root
        self._ct_key = ct_key
        self._root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value

    def prove(self, challenge: bytes) -> bytes:
        """An ECDSA signature over ``PROOF_CONTEXT`` and ``challenge`` by the CA's key: that this
        stack holds the key of the root a client pinned (see ``client.prove``)."""
        return self._key.sign(PROOF_CONTEXT + challenge, ec.ECDSA(hashes.SHA256()))

    def issue(self, csr_pem: bytes, identity: Identity) -> list[x509.Certificate]:
        """The chain (leaf, then root) for the key in ``csr_pem``, bound to ``identity``: a critical
        email SAN, the issuer extensions and an embedded SCT; valid for ten minutes from now.

        Raises ``CsrRejected`` when the CSR does not parse, its self-signature (the proof of
        possession of the private key) does not verify, or its key is not ECDSA on a NIST curve."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as e:
            raise CsrRejected(f"unreadable certificate signing request: {e}") from e
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or type(public_key.curve) not in _CURVE_HASHES:
            raise CsrRejected("only ECDSA P-256, P-384 and P-521 keys are certified")
        if not csr.is_signature_valid:
            raise CsrRejected("the CSR's signature does not verify: no proof of possession of the key")
        # Whole seconds: the verifier recomputes the SCT's millisecond timestamp through a float.
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([])).issuer_name(self.root.subject)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + LEAF_LIFETIME)
                   .add_extension(_key_usage(digital_signature=True), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self._root_ski),
                                  critical=False)
                   .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(identity.email)]), critical=True)
                   .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_OID, identity.issuer.encode()),
                                  critical=False)
                   .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V2_OID, asn1.encode_der(identity.issuer)),
                                  critical=False))
        # The SCT extension comes last, so the leaf without it has exactly the precertificate's TBS.
        precertificate = builder.sign(self._key, hashes.SHA256())
        tbs = precertificate.tbs_certificate_bytes
        root_key = self.root.public_key()
        assert isinstance(root_key, ec.EllipticCurvePublicKey)
        sct = precert_sct(self._ct_key, root_key, tbs, int(now.timestamp()) * 1000)
        leaf = builder.add_extension(sct_list_extension([sct]), critical=False).sign(self._key, hashes.SHA256())
        if leaf.tbs_precertificate_bytes != tbs:
            raise StackError("the leaf without its SCT differs from the precertificate the SCT signs")
        return [leaf, self.root]
