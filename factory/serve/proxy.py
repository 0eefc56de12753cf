"""Requests that reach ``factory serve`` through a proxy it trusts (a reverse proxy, a
repository manager): the client the proxy speaks for, not the proxy.

Only a peer in ``trusted-proxies`` is believed. From it, the client's address is the rightmost
address of ``X-Forwarded-For`` that is not itself a trusted proxy (the ones to its left could be
made up by the client), and the client's User-Agent is ``X-Forwarded-User-Agent`` when the proxy
sets it (a plain reverse proxy passes ``User-Agent`` through unchanged anyway). The ASGI scope is
changed in place, so that the access log and the miss log both name the client. From any other
peer the headers are ignored: a client cannot make up where it comes from.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from factory.failures import FactoryError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BadProxy(FactoryError):
    """A trusted proxy that is no address or network."""


def networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``127.0.0.1``, ``10.0.0.0/8``, ``::1``: each an address or a network."""
    found = []
    for value in values:
        try:
            found.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise BadProxy(f"trusted proxy {value!r} is not an IP address or network (e.g. 10.0.0.5 or "
                           "10.0.0.0/24)") from None
    return tuple(found)


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def forwarded_client(peer: str, forwarded_for: str, trusted: tuple[Network, ...]) -> str:
    """The client a chain of proxies speaks for: from the right, the first hop not trusted."""
    if not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


class TrustedProxies:
    """ASGI middleware: for a request from a trusted proxy, the client and User-Agent it forwards."""

    def __init__(self, app: ASGIApp, trusted: tuple[Network, ...]) -> None:
        self.app, self.trusted = app, trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("client") and _trusted(scope["client"][0], self.trusted):
            headers = dict(scope["headers"])
            if forwarded := headers.get(b"x-forwarded-for"):
                client = forwarded_client(scope["client"][0], forwarded.decode("latin-1"), self.trusted)
                scope["client"] = (client, 0)
            if agent := headers.get(b"x-forwarded-user-agent"):
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"user-agent"] + [(b"user-agent", agent)]
        await self.app(scope, receive, send)
