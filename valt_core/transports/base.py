"""The transport contract (``valt.transports``): live delivery to viewers, or ingest.

A transport contributes routes (HTTP or WebSocket, under ``/live/``) built around the
:class:`LiveHost` the core hands it: token checks and the cameras' live fMP4 streams
(:class:`~valt_core.transports.stream.LiveStream`, the same whether the camera is on this
process's media engine or relayed from another media server).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    from ..auth.media_tokens import MediaClaims
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
        """A Quart blueprint with this transport's routes."""

    def viewer_url(self, camera_id: int, token: str) -> str | None:
        """Where a viewer holding ``token`` opens ``camera_id`` (relative URL), if it serves viewers."""
        return None
