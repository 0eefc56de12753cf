"""Credentials for a hosted repository: from the environment, else from a netrc file.

In order: ``FACTORY_UPLOAD_USERNAME``/``FACTORY_UPLOAD_PASSWORD``, ``TWINE_USERNAME``/
``TWINE_PASSWORD`` (so that a CI set up for twine works as it is), the user and password in the
repository URL, then the netrc entry of the repository's host (``$NETRC``, else ``~/.netrc``). A
password alone is a token: its user is ``__token__``, as twine and most managers expect.
"""

from __future__ import annotations

import dataclasses
import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from factory.failures import FactoryError

TOKEN_USER = "__token__"
#: Pairs of variables, first found wins.
VARIABLES = (("FACTORY_UPLOAD_USERNAME", "FACTORY_UPLOAD_PASSWORD"), ("TWINE_USERNAME", "TWINE_PASSWORD"))


class CredentialsError(FactoryError):
    """A netrc file that cannot be read."""


@dataclasses.dataclass(frozen=True)
class Credentials:
    username: str
    password: str = dataclasses.field(repr=False)
    source: str  # where they came from, for messages (never the secret)


def find(url: str, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials for the repository at ``url``, or None (then uploads are anonymous)."""
    environ = os.environ if environ is None else environ
    for user_var, password_var in VARIABLES:
        user, password = environ.get(user_var, ""), environ.get(password_var, "")
        if password:
            return Credentials(user or TOKEN_USER, password, f"${password_var}")
        if user:
            raise CredentialsError(f"${user_var} is set but ${password_var} is not: set both (or only the password, "
                                   "for a token)")
    parts = urlsplit(url)
    if parts.password:
        return Credentials(unquote(parts.username or TOKEN_USER), unquote(parts.password), "the repository URL")
    path = Path(environ["NETRC"]) if environ.get("NETRC") else Path(environ.get("HOME", "~")).expanduser() / ".netrc"
    if not path.is_file() or not parts.hostname:
        return None
    try:
        found = netrc.netrc(str(path)).authenticators(parts.hostname)
    except (netrc.NetrcParseError, OSError) as exc:
        raise CredentialsError(f"{path}: cannot read: {exc}") from None
    if found is None or not found[2]:
        return None
    return Credentials(found[0] or TOKEN_USER, found[2], f"{path} ({parts.hostname})")


def without_userinfo(url: str) -> str:
    """``url`` with any user and password taken out (for requests and messages)."""
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()
