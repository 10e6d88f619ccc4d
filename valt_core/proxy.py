"""The client's address behind a reverse proxy, believed only from proxies the site names.

Sign-in throttling, lockout and the audit log all key on the client address. Behind a reverse
proxy every request comes from the proxy, so one attacker would lock out everybody. Sites name
their proxies in ``[server] trusted_proxies``; a request from one of them has its client
address taken from ``X-Forwarded-For``: the right-most address that is not itself a trusted
proxy (addresses to its left were written by the client and prove nothing). Requests from
anywhere else keep their socket's address, whatever headers they send.

A proxy that ends TLS also says, in ``X-Forwarded-Proto``, that the browser used HTTPS; from a
trusted proxy that becomes the request's scheme, so the absolute URLs Valt gives out (a sign-in
provider's callback URL, SAML metadata) say ``https://`` as the browser sees the site.
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


#: The schemes ``X-Forwarded-Proto`` may set, per ASGI scope type.
SCHEMES = {"http": {"http": "http", "https": "https"}, "websocket": {"http": "ws", "https": "wss"}}


def forwarded_scheme(scope_type: str, header: str | None) -> str | None:
    """The scheme a trusted proxy's ``X-Forwarded-Proto`` names (its first value), or ``None``."""
    if not header:
        return None
    return SCHEMES.get(scope_type, {}).get(header.split(",")[0].strip().lower())


class TrustedProxies:
    """ASGI middleware that sets ``scope["client"]`` from ``X-Forwarded-For`` and ``scope["scheme"]``
    from ``X-Forwarded-Proto`` of requests that come from trusted proxies."""

    def __init__(self, app: Callable[..., Awaitable[Any]], networks: list[Network]) -> None:
        self.app = app
        self.networks = networks

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        """Rewrite the client address of HTTP and WebSocket requests, then call the app."""
        if self.networks and scope.get("type") in ("http", "websocket") and scope.get("client"):
            header = proto = None
            for name, value in scope.get("headers", ()):
                if name == b"x-forwarded-for":
                    header = value.decode("latin-1") if header is None else f"{header},{value.decode('latin-1')}"
                elif name == b"x-forwarded-proto" and proto is None:
                    proto = value.decode("latin-1")
            peer, port = scope["client"][0], scope["client"][1]
            client = forwarded_client(peer, header, self.networks)
            if client != peer:
                scope = {**scope, "client": (client, port)}
            scheme = forwarded_scheme(scope["type"], proto) if _trusted(peer, self.networks) else None
            if scheme is not None and scheme != scope.get("scheme"):
                scope = {**scope, "scheme": scheme}
        return await self.app(scope, receive, send)
