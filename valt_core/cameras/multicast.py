"""Ask a multicast group a question and gather the unicast answers: the core of LAN discovery.

WS-Discovery (ONVIF) and SSDP (UPnP, Axis) both work this way. The query goes out only from
the local addresses given (``[cameras] discovery_addresses``), so a site decides which networks
are probed; with none, the kernel's default multicast interface is used.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

log = logging.getLogger(__name__)


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, answers: list[tuple[bytes, str]]) -> None:
        self.answers = answers

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.answers.append((data, addr[0]))

    def error_received(self, exc: Exception) -> None:
        log.debug("discovery socket error: %s", exc)


def _socket(local_address: str | None, ttl: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
    # Our own query must not come back to us as an "answer".
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    if local_address:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(local_address))
    sock.bind((local_address or "0.0.0.0", 0))
    sock.setblocking(False)
    return sock


async def multicast_query(payload: bytes, group: str, port: int, addresses: list[str], timeout_s: float,
                          repeats: int = 2, ttl: int = 1) -> list[tuple[bytes, str]]:
    """Send ``payload`` to ``group:port`` from each of ``addresses`` and collect answers for ``timeout_s``.

    Returns ``(datagram, sender address)`` pairs in arrival order. UDP may drop a packet, so
    the query is sent ``repeats`` times, spread over the first part of the wait; callers
    de-duplicate. ``ttl`` 1 keeps the query on the local link, as both protocols intend.
    """
    loop = asyncio.get_running_loop()
    answers: list[tuple[bytes, str]] = []
    transports = []
    try:
        for address in addresses or [None]:
            sock = _socket(address, ttl)
            transport, _ = await loop.create_datagram_endpoint(lambda: _Collector(answers), sock=sock)
            transports.append(transport)
        deadline = time.monotonic() + timeout_s
        for i in range(max(1, repeats)):
            for transport in transports:
                try:
                    transport.sendto(payload, (group, port))
                except OSError as err:  # e.g. no route for multicast on that interface
                    log.warning("discovery query to %s:%d failed: %s", group, port, err)
            if i + 1 < repeats:
                await asyncio.sleep(min(0.25, timeout_s / (2 * repeats)))
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    finally:
        for transport in transports:
            transport.close()
    return answers
