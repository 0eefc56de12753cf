"""A local, Sigstore-compatible signing stack for factory: OIDC issuer, Fulcio-like CA, Rekor v1 log.

The real ``sigstore`` client signs against it and verifies with the trusted root it writes, without the
public Sigstore services. One HTTP server answers for all three; keys and the log persist in a state
directory, so bundles keep verifying after restarts.
"""

from __future__ import annotations

from factory.sigstore_stack.errors import (
    BadIdentity,
    CsrRejected,
    EntryExists,
    EntryNotFound,
    EntryRejected,
    NotOurStack,
    StackError,
    StackNotRunning,
    StackNotStarted,
    StateDirBusy,
    StateDirCorrupt,
    TokenRejected,
    TokenRequestFailed,
)
from factory.sigstore_stack.client import fetch_identity_token
from factory.sigstore_stack.stack import LocalSigstore, serve

__all__ = [
    "BadIdentity",
    "CsrRejected",
    "EntryExists",
    "EntryNotFound",
    "EntryRejected",
    "LocalSigstore",
    "NotOurStack",
    "StackError",
    "StackNotRunning",
    "StackNotStarted",
    "StateDirBusy",
    "StateDirCorrupt",
    "TokenRejected",
    "TokenRequestFailed",
    "fetch_identity_token",
    "serve",
]
