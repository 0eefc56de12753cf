"""Who may read the index: users with hashed secrets, in a file of ``name:hash`` lines.

A token is a secret like any other: give it to pip or uv as a password (for instance in
``.netrc``, with any login, or the login ``__token__``), or send it as ``Authorization: Bearer``.
Secrets are stored as ``pbkdf2_sha256$<iterations>$<salt>$<hash>``, never in clear.

Failed logins must tell nothing and cost little:

- every attempt whose answer is not known yet costs the same number of PBKDF2 runs (``work``),
  whoever it names: a known user's hash is padded with dummy runs, an unknown name is checked
  against the tokens, and the tokens share one salt (``factory users add --token`` keeps it), so
  checking a secret against all of them is one run;
- at most ``max_hashing`` PBKDF2 runs happen at once, however many requests wait;
- a client's failures back off (``Throttle``): after a few, it is answered 429 without any
  hashing until its delay, doubling with each failure, has passed. Verified credentials are
  remembered, so a client that has logged in is never slowed by anyone's failures.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
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
#: PBKDF2 runs at once, at most: the rest wait their turn (without holding a thread).
MAX_HASHING = 2


def hash_secret(secret: str, iterations: int = ITERATIONS, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), iterations).hex()
    return f"pbkdf2_sha256${iterations}${salt}${digest}"


def _parts(stored: str) -> tuple[int, str, str] | None:
    """(iterations, salt, digest) of a stored hash, None if it is not one."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        return (int(iterations), salt, digest) if scheme == "pbkdf2_sha256" else None
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class Credentials:
    """What an ``Authorization`` header claims."""

    name: str  # TOKEN_USER for a Bearer token
    secret: str


def credentials(header: str | None) -> Credentials | None:
    """The credentials in an ``Authorization`` header, None when it holds none (no hashing needed
    to refuse it)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Credentials(TOKEN_USER, value.strip())
    if scheme.lower() == "basic":
        try:
            name, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return Credentials(name, secret) if secret else None
    return None


class Users:
    """The users file, read once. Verified credentials are remembered (by a digest), so PBKDF2
    runs once per (user, secret) that works, and never again for it."""

    def __init__(self, path: Path, max_hashing: int = MAX_HASHING) -> None:
        self.path = path
        self.users: dict[str, tuple[int, str, str]] = {}
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the users file: {exc.strerror}") from None
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, stored = line.partition(":")
            parts = _parts(stored) if sep else None
            if parts is None:
                raise ConfigError(f"{path}:{number}: expected `name:pbkdf2_sha256$...` (see `factory users add`)")
            self.users[name] = parts
        # Tokens by (iterations, salt): one PBKDF2 run checks a secret against every token of a group.
        self.token_groups: dict[tuple[int, str], dict[str, str]] = {}
        for name, (iterations, salt, digest) in self.users.items():
            if name.startswith(TOKEN_USER):
                self.token_groups.setdefault((iterations, salt), {})[digest] = name
        #: PBKDF2 runs per attempt, whoever it names.
        self.work = max(1, len(self.token_groups))
        self.hashes = 0  # PBKDF2 runs so far
        self.peak = 0  # the most that ran at once
        self._running = 0
        self._gate = threading.BoundedSemaphore(max_hashing)
        self._verified: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _pbkdf2(self, secret: str, iterations: int, salt: str) -> str:
        with self._gate:
            with self._lock:
                self.hashes += 1
                self._running += 1
                self.peak = max(self.peak, self._running)
            try:
                return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), iterations).hex()
            finally:
                with self._lock:
                    self._running -= 1

    @staticmethod
    def _key(found: Credentials) -> str:
        return hashlib.sha256(f"{found.name}\0{found.secret}".encode()).hexdigest()

    def known(self, found: Credentials) -> bool:
        """Whether these credentials were verified before (no hashing)."""
        key = self._key(found)
        with self._lock:
            if key in self._verified:
                self._verified.move_to_end(key)
                return True
        return False

    def check(self, found: Credentials) -> bool:
        """Whether the credentials are good: ``work`` PBKDF2 runs, whatever they name."""
        if self.known(found):
            return True
        runs = 0
        ok = False
        user = self.users.get(found.name) if not found.name.startswith(TOKEN_USER) else None
        if user is not None:
            iterations, salt, digest = user
            ok = hmac.compare_digest(self._pbkdf2(found.secret, iterations, salt), digest)
            runs += 1
        else:  # a token, with any login (pip sends one)
            for (iterations, salt), digests in self.token_groups.items():
                got = self._pbkdf2(found.secret, iterations, salt)
                ok = any(hmac.compare_digest(got, digest) for digest in digests) or ok
                runs += 1
        while runs < self.work:  # the same cost for every name, known or not
            self._pbkdf2(found.secret, ITERATIONS, "factory-padding")
            runs += 1
        if ok:
            with self._lock:
                self._verified[self._key(found)] = None
                if len(self._verified) > CACHE_SIZE:
                    self._verified.popitem(last=False)
        return ok

    def authorize(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header grants access."""
        found = credentials(header)
        return found is not None and self.check(found)


class Throttle:
    """Failed logins back off, per client: from the ``free``-th failure on, each makes the client
    wait before its next try, ``base`` seconds, doubling, up to ``cap``. A success forgets."""

    def __init__(self, free: int = 3, base: float = 1.0, cap: float = 60.0, clients: int = 10_000) -> None:
        self.free, self.base, self.cap, self.clients = free, base, cap, clients
        self._failures: dict[str, tuple[int, float]] = {}  # client -> (failures, may try again at)

    def wait(self, client: str, now: float) -> float:
        """Seconds before ``client`` may try again (0: now)."""
        _, until = self._failures.get(client, (0, 0.0))
        return max(0.0, until - now)

    def failed(self, client: str, now: float) -> None:
        count = self._failures.get(client, (0, 0.0))[0] + 1
        delay = 0.0 if count < self.free else min(self.cap, self.base * 2 ** (count - self.free))
        self._failures[client] = (count, now + delay)
        if len(self._failures) > self.clients:  # forget the clients whose delay has passed
            self._failures = {c: f for c, f in self._failures.items() if f[1] > now}

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def tracks(self, client: str) -> bool:
        return client in self._failures


def add_user(path: Path, name: str, secret: str) -> None:
    """Add (or replace) ``name`` in the users file. A token shares the salt of the file's other
    tokens, so that a secret is checked against all of them at once (see ``Users.check``)."""
    if not name or ":" in name or not secret:
        raise ConfigError("a user needs a name without ':' and a non-empty secret")
    lines = [l for l in (path.read_text().splitlines() if path.exists() else []) if l.partition(":")[0] != name]
    iterations, salt = ITERATIONS, None
    if name.startswith(TOKEN_USER):
        for line in lines:
            other, _, stored = line.partition(":")
            if other.startswith(TOKEN_USER) and (parts := _parts(stored)) is not None:
                iterations, salt = parts[0], parts[1]
                break
    lines.append(f"{name}:{hash_secret(secret, iterations, salt)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 and renamed into place: the hashes are never readable by others, even briefly.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
