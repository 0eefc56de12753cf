"""Finding and trusting the local stack of a state directory, from a process that shares it.

The trust root is read from the state directory (``trust_config.json``, and the issuer from
``stack.json``) and pinned: nothing a port answers can change it. The stack that runs on the
directory says where it listens in ``running.json``, so stacks of different state directories
each have a port of their own (or ``local-sigstore`` names one explicitly). Before the token
secret is sent, whatever answers there must prove that it holds the key of the pinned CA root,
by signing a fresh random challenge: a process that took the port while the stack was down
gets nothing.
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import json
import os
import secrets
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from factory.sigstore_stack.errors import NotOurStack, StackNotRunning, TokenRequestFailed

#: Where the running stack of a state directory says it listens.
RUNNING = "running.json"
TRUST_CONFIG = "trust_config.json"
#: What a proof of possession signs before the client's challenge (never a certificate's bytes).
PROOF_CONTEXT = b"factory sigstore stack: proof of the CA key\n"
#: The shortest token secret a stack accepts: a shorter one could be guessed.
MIN_SECRET = 32


@dataclasses.dataclass(frozen=True)
class Pinned:
    """A state directory's trust root, as its files say."""

    state_dir: Path
    trust_config: dict[str, Any]  # clienttrustconfig JSON
    issuer: str  # the OIDC issuer its certificates name
    root: x509.Certificate  # the CA root, whose key the running stack must prove it holds


def pinned(state_dir: Path) -> Pinned:
    """The trust root of the stack of ``state_dir``; raises ``StackNotRunning`` when the stack
    never ran there (then there is nothing to pin yet)."""
    try:
        trust = json.loads((state_dir / TRUST_CONFIG).read_text())
        issuer = json.loads((state_dir / "stack.json").read_text())["issuer"]
        (authority,) = trust["trustedRoot"]["certificateAuthorities"]
        der = base64.b64decode(authority["certChain"]["certificates"][-1]["rawBytes"])
        root = x509.load_der_x509_certificate(der)
    except FileNotFoundError:
        raise StackNotRunning(f"no local Sigstore stack ever ran on {state_dir} (no {TRUST_CONFIG} there): start it "
                              "with `factory sigstore-stack`, or point trust-config at the stack's state "
                              "directory") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StackNotRunning(f"{state_dir}: cannot read the local stack's trust root ({exc}): "
                              "a damaged state directory") from exc
    return Pinned(state_dir, trust, issuer, root)


def held(state_dir: Path) -> bool:
    """Whether a stack holds ``state_dir`` (running, or starting)."""
    try:
        fd = os.open(state_dir / "lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def running_url(state_dir: Path) -> str | None:
    """Where the stack running on ``state_dir`` listens, None when none runs there (or it is
    still starting)."""
    if not held(state_dir):
        return None  # a running.json left by a stack that was killed names a port anyone may have now
    try:
        url = json.loads((state_dir / RUNNING).read_text())["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if isinstance(url, str) else None


def locate(state_dir: Path, override: str = "") -> str:
    """The URL of the stack of ``state_dir``: ``override`` (``local-sigstore``) when given, else
    where the stack running on the directory said it listens."""
    if override:
        return override.rstrip("/")
    url = running_url(state_dir)
    if url is None:
        raise StackNotRunning(f"no local Sigstore stack runs on {state_dir}: start it with `factory sigstore-stack "
                              "--background` (factory build and worker do), or set signing = \"sigstore\"")
    return url


def prove(url: str, pin: Pinned, timeout: float = 30) -> None:
    """Make whatever answers at ``url`` prove it holds the pinned CA root's key.

    Raises ``TokenRequestFailed`` when nothing answers, ``NotOurStack`` when it does not prove it."""
    challenge = secrets.token_bytes(32)
    try:
        response = httpx.post(f"{url}/factory/prove", json={"challenge": base64.b64encode(challenge).decode()},
                              timeout=timeout)
    except httpx.HTTPError as exc:
        raise TokenRequestFailed(f"no local Sigstore stack answers at {url}: {exc}") from exc
    try:
        signature = base64.b64decode(response.json()["signature"], validate=True)
        key = pin.root.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise TypeError("not an EC key")
        key.verify(signature, PROOF_CONTEXT + challenge, ec.ECDSA(hashes.SHA256()))
    except (ValueError, KeyError, TypeError, InvalidSignature) as exc:
        raise NotOurStack(f"what answers at {url} is not the Sigstore stack of {pin.state_dir} (it cannot prove it "
                          f"holds that stack's CA key: another state directory's stack, or another program): the "
                          f"token secret was not sent. Unset local-sigstore to find the stack of {pin.state_dir}, "
                          "or stop what listens there") from exc


def identity_token(state_dir: Path, override: str, secret_path: Path, email: str) -> str:
    """An identity token for ``email`` from the stack of ``state_dir``, once it proved itself.

    Raises ``StackNotRunning``, ``NotOurStack`` or ``TokenRequestFailed``."""
    pin = pinned(state_dir)
    try:
        secret = secret_path.read_text().strip()
    except OSError as exc:
        raise TokenRequestFailed(f"cannot read the local Sigstore stack's secret {secret_path} ({exc.strerror}): "
                                 "set local-sigstore-secret to the token.secret in its state directory") from None
    if len(secret) < MIN_SECRET:
        raise TokenRequestFailed(f"{secret_path} holds no usable secret: remove it and restart the stack")
    url = locate(state_dir, override)
    prove(url, pin)
    return fetch_identity_token(url, email, secret)


def fetch_identity_token(stack_url: str, email: str, secret: str, *, lifetime: int = 600) -> str:
    """An identity token for ``email`` from the stack running at ``stack_url``, which hands them
    only to whoever shows its ``token.secret``.

    Raises ``TokenRequestFailed`` if the stack cannot be reached or refuses."""
    try:
        response = httpx.post(f"{stack_url.rstrip('/')}/oidc/token", json={"email": email, "lifetime": lifetime},
                              headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    except httpx.HTTPError as e:
        raise TokenRequestFailed(f"cannot reach the sigstore stack at {stack_url}: {e}") from e
    if response.status_code != 200:
        raise TokenRequestFailed(f"the sigstore stack refused a token ({response.status_code}): {response.text}")
    try:
        token = response.json()["id_token"]
    except (ValueError, KeyError, TypeError) as e:
        raise TokenRequestFailed(f"the sigstore stack answered without a token: {response.text[:200]}") from e
    if not isinstance(token, str):
        raise TokenRequestFailed("the sigstore stack answered without a token")
    return token
