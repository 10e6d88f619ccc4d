"""The transport contract (``valt.transports``): live delivery to viewers, or ingest.

A transport contributes routes (HTTP or WebSocket, under ``/live/``) built around the
:class:`LiveHost` the core hands it: token checks and the cameras' live fMP4 streams
(:class:`~valt_core.transports.stream.LiveStream`, the same whether the camera is on this
process's media engine or relayed from another media server).

An ingest transport (``direction = "in"``, e.g. ``rtmp``) instead listens for devices that push
media: every process that runs a media engine starts it with :meth:`Transport.start_ingest`,
handing it a :class:`PushHost` (the push registry that cameras read from, the TLS context, and
where refusals are told).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    import ssl

    from ..auth.media_tokens import MediaClaims
    from ..push import PushRegistry
    from .stream import LiveStream, Viewer


class LiveHost(Protocol):
    """What the core offers transports."""

    async def authorize(self, token: str, camera_id: int, transport: str = "",
                        remote_addr: str = "") -> "MediaClaims":
        """The claims of a live token that may open ``camera_id`` now (the opening is audited).

        Raises ``NotAuthenticated`` (bad, expired or signed-out), ``Forbidden``, ``NotFound`` or
        ``CameraDisabled``.
        """

    async def live_stream(self, camera_id: int) -> "LiveStream":
        """The camera's shared live fMP4 stream (started on first use); ``NotFound`` if no camera."""

    def watch(self, claims: "MediaClaims", stream: "LiveStream", maxsize: int, transport: str) -> "Viewer":
        """A viewer of ``stream`` that the core closes when the claims' access ends."""

    def unwatch(self, stream: "LiveStream", viewer: "Viewer") -> None:
        """Forget a viewer that went away."""


class PushHost(Protocol):
    """What the core offers an ingest transport (``direction = "in"``)."""

    registry: "PushRegistry"
    """Where publishers are authenticated and their media handed to the cameras."""
    bind_host: str
    """The address the media server listens on (``[media] live_host``, else ``[server] host``)."""

    def ssl_context(self) -> "ssl.SSLContext | None":
        """The TLS context of the media server's certificate when ``[server] tls`` is on, else ``None``."""

    def refused(self, reason: str, remote_addr: str, device: str = "", transport: str = "") -> None:
        """Tell the app server that a publish was refused (it audits and counts it).

        ``reason`` is one of :mod:`valt_core.push`'s words (``no key``, ``wrong key``,
        ``revoked key``) or another short phrase; ``device`` the device whose revoked key it was.
        The key itself must never be passed.
        """

    def published(self, device: str, remote_addr: str, transport: str = "") -> None:
        """Tell the app server that a device started publishing (audited)."""


class Transport(ABC):
    """Base class of every transport."""

    name: ClassVar[str]
    """Short name used in settings and answers (``wss``, ``hls``, ``rtmp``)."""
    Config: ClassVar[type[BaseModel]]
    """Pydantic model of the transport's options (``[live.transport_options.NAME]``)."""
    direction: ClassVar[str] = "out"
    """``out`` delivers live media to viewers; ``in`` ingests media from encoders."""

    def __init__(self, config: BaseModel) -> None:
        self.config = config

    @abstractmethod
    def blueprint(self, host: LiveHost) -> Any:
        """A Quart blueprint with this transport's routes (``None``: it has none, as an ingest one)."""

    async def start_ingest(self, host: PushHost) -> None:  # noqa: B027 - only ingest transports listen
        """Start listening for publishers (``direction = "in"``); raise ``ConfigError`` if it cannot."""

    async def stop_ingest(self) -> None:  # noqa: B027 - only ingest transports listen
        """Stop listening and close every publisher's connection."""

    def publish_urls(self) -> list[str]:
        """Where a device publishes to this transport (``rtmp://host:1935/live``), once listening."""
        return []

    def viewer_url(self, camera_id: int, token: str) -> str | None:
        """Where a viewer holding ``token`` opens ``camera_id`` (relative URL), if it serves viewers."""
        return None
