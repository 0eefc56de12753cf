"""Who may read the index: users with hashed secrets, in a file of ``name:hash`` lines.

A token is a secret like any other: give it to pip or uv as a password (for instance in
``.netrc``, with any login, or the login ``__token__``), or send it as ``Authorization: Bearer``.
Secrets are stored as ``pbkdf2_sha256$<iterations>$<salt>$<hash>``, never in clear.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

from factory.failures import ConfigError

ITERATIONS = 200_000
TOKEN_USER = "__token__"
CACHE_SIZE = 4096


def hash_secret(secret: str, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), iterations).hex()
    return f"pbkdf2_sha256${iterations}${salt}${digest}"


def _matches(secret: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    got = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), int(iterations)).hex()
    return hmac.compare_digest(got, digest)


class Users:
    """The users file, read once. Verification results are cached, so PBKDF2 runs once per
    (user, secret) and not on every request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.users: dict[str, str] = {}
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the users file: {exc.strerror}") from None
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, stored = line.partition(":")
            if not sep or not stored.startswith("pbkdf2_sha256$"):
                raise ConfigError(f"{path}:{number}: expected `name:pbkdf2_sha256$...` (see `factory users add`)")
            self.users[name] = stored
        # Verified (name, secret digest) pairs, least recently used first: PBKDF2 runs once per
        # pair, and a flood of wrong guesses pushes out only the oldest entries.
        self._verified: collections.OrderedDict[tuple[str, str], bool] = collections.OrderedDict()
        self._lock = threading.Lock()

    def check(self, name: str, secret: str) -> bool:
        key = (name, hashlib.sha256(secret.encode()).hexdigest())
        with self._lock:
            if key in self._verified:
                self._verified.move_to_end(key)
                return self._verified[key]
        if name in self.users:
            ok = _matches(secret, self.users[name])
        else:  # a token: any login (pip sends one), the secret matched against the token entries
            ok = any(_matches(secret, stored) for user, stored in self.users.items() if user.startswith(TOKEN_USER))
        with self._lock:
            self._verified[key] = ok
            if len(self._verified) > CACHE_SIZE:
                self._verified.popitem(last=False)
        return ok

    def authorize(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header grants access."""
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return self.check(TOKEN_USER, value.strip())
        if scheme.lower() == "basic":
            try:
                name, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return self.check(name, secret)
        return False


def add_user(path: Path, name: str, secret: str) -> None:
    """Add (or replace) ``name`` in the users file."""
    if not name or ":" in name or not secret:
        raise ConfigError("a user needs a name without ':' and a non-empty secret")
    lines = [l for l in (path.read_text().splitlines() if path.exists() else []) if l.partition(":")[0] != name]
    lines.append(f"{name}:{hash_secret(secret)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 and renamed into place: the hashes are never readable by others, even briefly.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
