"""The client's address behind a reverse proxy, believed only from proxies the site names.

Sign-in throttling, lockout and the audit log all key on the client address. Behind a reverse
proxy every request comes from the proxy, so one attacker would lock out everybody. Sites name
their proxies in ``[server] trusted_proxies``; a request from one of them has its client
address taken from ``X-Forwarded-For``: the right-most address that is not itself a trusted
proxy (addresses to its left were written by the client and prove nothing). Requests from
anywhere else keep their socket's address, whatever headers they send.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Awaitable, Callable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: list[str]) -> list[Network]:
    """``["10.0.0.1", "192.0.2.0/24"]`` as networks; ``ValueError`` names a bad entry."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as err:
            raise ValueError(f"{value!r} is not an IP address or network") from err
    return networks


def _trusted(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def forwarded_client(peer: str, forwarded_for: str | None, networks: list[Network]) -> str:
    """The client address of a request from ``peer`` with this ``X-Forwarded-For`` header."""
    if not networks or not forwarded_for or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage in the header: keep what the socket says
    return hops[0] if hops else peer


class TrustedProxies:
    """ASGI middleware that sets ``scope["client"]`` from ``X-Forwarded-For`` of trusted proxies."""

    def __init__(self, app: Callable[..., Awaitable[Any]], networks: list[Network]) -> None:
        self.app = app
        self.networks = networks

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        """Rewrite the client address of HTTP and WebSocket requests, then call the app."""
        if self.networks and scope.get("type") in ("http", "websocket") and scope.get("client"):
            header = None
            for name, value in scope.get("headers", ()):
                if name == b"x-forwarded-for":
                    header = value.decode("latin-1") if header is None else f"{header},{value.decode('latin-1')}"
            peer, port = scope["client"][0], scope["client"][1]
            client = forwarded_client(peer, header, self.networks)
            if client != peer:
                scope = {**scope, "client": (client, port)}
        return await self.app(scope, receive, send)
