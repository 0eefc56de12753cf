"""An OIDC issuer with a single ES256 key: it mints identity tokens and checks them for the CA."""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from factory.sigstore_stack.errors import BadIdentity, TokenRejected
from factory.sigstore_stack.keys import key_id

AUDIENCE = "sigstore"
# ASCII only: the address goes into an RFC 822 name, an IA5String, in the signing certificate.
_EMAIL = re.compile(r"[!-?A-~]+@[!-?A-~]+")


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a verified token speaks for: the email address and the issuer that vouched for it."""

    email: str
    issuer: str


class OidcIssuer:
    """Mints and verifies identity tokens for ``issuer`` (the ``iss`` claim), signed with ``key``."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, issuer: str) -> None:
        self._key = key
        self.issuer = issuer
        self.kid = key_id(key.public_key()).hex()[:16]

    def mint(self, email: str, lifetime: int = 600) -> str:
        """A JWT for ``email`` with audience ``sigstore``, valid from now for ``lifetime`` seconds."""
        if not isinstance(email, str) or not _EMAIL.fullmatch(email) or len(email) > 254:
            raise BadIdentity(f"not a plain ASCII email address: {email!r}")
        if not isinstance(lifetime, int) or not 1 <= lifetime <= 86400:
            raise BadIdentity(f"token lifetime must be 1..86400 seconds, not {lifetime!r}")
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": email, "email": email, "email_verified": True,
                  "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + lifetime}
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})

    def verify(self, token: str) -> Identity:
        """The identity ``token`` proves; raises ``TokenRejected`` unless it is signed by this issuer's key,
        names this issuer and the ``sigstore`` audience, is within its validity period and carries a
        verified email address."""
        try:
            claims = jwt.decode(token, self._key.public_key(), algorithms=["ES256"], audience=AUDIENCE,
                                issuer=self.issuer,
                                options={"require": ["iss", "sub", "aud", "iat", "exp", "email"]})
        except jwt.InvalidTokenError as e:
            raise TokenRejected(f"identity token rejected: {e}") from e
        email = claims["email"]
        if not isinstance(email, str) or not _EMAIL.fullmatch(email):
            raise TokenRejected("identity token has no usable email claim")
        if claims.get("email_verified") is not True:
            raise TokenRejected("identity token's email is not verified")
        return Identity(email=email, issuer=self.issuer)

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set publishing the issuer's public key."""
        jwk = ECAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "alg": "ES256", "use": "sig"})
        return {"keys": [jwk]}

    def discovery(self, base_url: str) -> dict[str, Any]:
        """The OpenID Connect discovery document; endpoints are under ``base_url`` (the stack's URL)."""
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{base_url}/oidc/jwks",
            "token_endpoint": f"{base_url}/oidc/token",
            # Sigstore's client model requires the field; there is no interactive login here.
            "authorization_endpoint": f"{base_url}/oidc/authorize",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "claims_supported": ["iss", "sub", "aud", "iat", "nbf", "exp", "email", "email_verified"],
        }
