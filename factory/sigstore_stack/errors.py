"""The errors the local Sigstore stack raises; each carries the HTTP status it is answered with."""

from __future__ import annotations

from factory.failures import FactoryError


class StackError(FactoryError):
    """Base class of the stack's errors."""

    status = 500


class StackNotStarted(StackError):
    """The stack was asked for its URL or a token before it was started."""


class StateDirBusy(StackError):
    """Another running stack holds the state directory's lock."""


class StateDirCorrupt(StackError):
    """The state directory holds files that do not fit together (e.g. a CA certificate for another key)."""


class BadIdentity(StackError):
    """A token was requested for something that is not a plain ASCII email address."""

    status = 400


class TokenRejected(StackError):
    """An identity token is not signed by the issuer, is for another issuer or audience, or has expired."""

    status = 401


class CsrRejected(StackError):
    """A certificate signing request cannot be parsed, has a bad self-signature, or an unsupported key."""

    status = 400


class EntryRejected(StackError):
    """A proposed log entry is malformed, of an unsupported kind, or its signature does not verify."""

    status = 400


class EntryExists(StackError):
    """The log already holds an entry with the same canonical body."""

    status = 409


class EntryNotFound(StackError):
    """No log entry has the requested UUID or index."""

    status = 404


class TokenRequestFailed(StackError):
    """A running stack did not hand out an identity token over HTTP."""


class StackNotRunning(StackError):
    """No local stack runs on the state directory (or none ever did: there is no trust root yet)."""


class NotOurStack(StackError):
    """What answers where the stack should be cannot prove it holds the pinned root's key."""
