"""The client trust configuration (``clienttrustconfig.v0.1``) that points Sigstore clients at the stack."""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from factory.plumbing.files import write_text
from factory.sigstore_stack.keys import key_id, spki_der

OPERATOR = "factory"


def _time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _log(base_url: str, key: ec.EllipticCurvePublicKey, since: datetime.datetime) -> dict[str, Any]:
    """A ``TransparencyLogInstance`` (used for both the Rekor log and the CT log)."""
    return {"baseUrl": base_url, "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": base64.b64encode(spki_der(key)).decode(),
                          "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": {"start": _time(since)}},
            "logId": {"keyId": base64.b64encode(key_id(key)).decode()}}


def _service(url: str, since: datetime.datetime) -> dict[str, Any]:
    return {"url": url, "majorApiVersion": 1, "validFor": {"start": _time(since)}, "operator": OPERATOR}


def client_trust_config(*, base_url: str, oidc_url: str, root: x509.Certificate,
                        rekor_key: ec.EllipticCurvePublicKey, ct_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The trust config for a stack at ``base_url``: its CA ``root``, Rekor and CT log keys as the trusted
    root, and its CA, OIDC provider (discovery under ``oidc_url``) and Rekor v1 log as the signing
    services. There is no timestamp authority: the log's integrated time is the signing time. Everything
    is valid from the root's start."""
    since = root.not_valid_before_utc
    organization = root.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    common_name = root.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return {
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [_log(base_url, rekor_key, since)],
            "certificateAuthorities": [{
                "subject": {"organization": str(organization[0].value) if organization else "",
                            "commonName": str(common_name[0].value) if common_name else ""},
                "uri": base_url,
                "certChain": {"certificates": [
                    {"rawBytes": base64.b64encode(root.public_bytes(serialization.Encoding.DER)).decode()}]},
                "validFor": {"start": _time(since), "end": _time(root.not_valid_after_utc)},
            }],
            "ctlogs": [_log(f"{base_url}/ct", ct_key, since)],
            "timestampAuthorities": [],
        },
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [_service(base_url, since)],
            "oidcUrls": [_service(oidc_url, since)],
            "rekorTlogUrls": [_service(base_url, since)],
            "tsaUrls": [],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        },
    }


def write_trust_config(path: Path, config: dict[str, Any]) -> None:
    """Write ``config`` as JSON to ``path``, atomically."""
    write_text(path, json.dumps(config, indent=2) + "\n")
