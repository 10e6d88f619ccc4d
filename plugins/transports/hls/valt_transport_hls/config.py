"""Settings of the ``hls`` transport (``[live.transport_options.hls]``)."""

from pydantic import BaseModel, ConfigDict, Field


class HlsConfig(BaseModel):
    """How many segments the playlist holds, and when an unwatched stream is dropped."""

    model_config = ConfigDict(extra="forbid")
    playlist_segments: int = Field(6, ge=3, le=30, description="Segments (GOPs) listed in the live playlist.")
    idle_s: float = Field(20.0, ge=5, le=600, description="Stop segmenting a camera nobody asked about for this long.")
