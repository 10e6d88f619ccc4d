"""The transport contract (``valt.transports``): live delivery to viewers, or ingest.

A transport contributes HTTP/WebSocket routes (served under ``/live/<name>/``) and is handed
the media engine's per-camera packet feed. The live-view issue fills in the media side.
"""

from __future__ import annotations

from abc import ABC
from typing import Any, ClassVar

from pydantic import BaseModel


class Transport(ABC):
    """Base class of every transport."""

    name: ClassVar[str]
    """Short name used in settings and URLs (``wss``, ``hls``, ``rtmp``)."""
    Config: ClassVar[type[BaseModel]]
    """Pydantic model of the transport's options."""
    direction: ClassVar[str] = "out"
    """``out`` delivers live media to viewers; ``in`` ingests media from encoders."""

    def __init__(self, config: BaseModel) -> None:
        self.config = config

    def blueprint(self) -> Any | None:
        """A Quart blueprint with this transport's routes, or ``None``."""
        return None
