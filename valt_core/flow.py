"""Backpressure for request bodies that stream to disk (tus uploads).

Quart reads a request's body into memory as fast as the connection brings it, however slowly
the view consumes it: a 1 GB PATCH over loopback grew the server by 800 MB while the bytes
waited for the disk. :class:`BodyFlow` is ASGI middleware that holds back the next body message
of a streamed request until the view has taken what is buffered (below ``limit`` bytes); then
hypercorn's own bounded queue fills and it stops reading the socket, so TCP slows the client
down. The view tells how much it took with :func:`taken`.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, AsyncIterator, Awaitable, Callable

#: Where the flow object of a request is kept in its ASGI scope.
SCOPE_KEY = "valt.body_flow"


class Flow:
    """Bytes handed to the app but not yet taken by the view, and a wait for room."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffered = 0
        self._room = asyncio.Event()
        self._room.set()

    async def admit(self, size: int) -> None:
        """Wait until fewer than ``limit`` bytes are waiting, then count ``size`` more."""
        while self.buffered >= self.limit:
            self._room.clear()
            await self._room.wait()
        self.buffered += size

    def taken(self, size: int) -> None:
        """The view took ``size`` bytes."""
        self.buffered = max(0, self.buffered - size)
        if self.buffered < self.limit:
            self._room.set()


class BodyFlow:
    """ASGI middleware: bounded buffering for the bodies of requests whose path matches ``paths``."""

    def __init__(self, app: Callable[..., Awaitable[Any]], paths: re.Pattern[str], limit: int,
                 methods: frozenset[str] = frozenset({"PATCH", "POST"})) -> None:
        self.app = app
        self.paths = paths
        self.limit = limit
        self.methods = methods

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        """Wrap ``receive`` of a matching request so that its body waits for the view."""
        if scope.get("type") != "http" or scope.get("method") not in self.methods \
                or not self.paths.match(scope.get("path", "")):
            return await self.app(scope, receive, send)
        flow = Flow(self.limit)

        async def held_receive() -> dict:
            message = await receive()
            if message.get("type") == "http.request":
                await flow.admit(len(message.get("body", b"")))
            return message

        return await self.app({**scope, SCOPE_KEY: flow}, held_receive, send)


async def taken(body: AsyncIterator[bytes], scope: dict) -> AsyncIterator[bytes]:
    """``body``'s chunks, telling the request's :class:`Flow` (if any) as each is taken."""
    flow: Flow | None = scope.get(SCOPE_KEY)
    async for chunk in body:
        if flow is not None:
            flow.taken(len(chunk))
        yield chunk
