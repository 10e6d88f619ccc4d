"""Settings of a generic RTSP camera."""

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RtspCameraConfig(BaseModel):
    """The stream URLs and the credentials to put in them."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="Main stream, e.g. rtsp://192.0.2.10:554/stream1 (no credentials in it).")
    sub_url: str = Field("", description="Optional smaller stream for live tiles.")
    username: str = Field("", description="Camera user name.")
    password: str = Field("", description="Camera password (stored, never shown).")

    @field_validator("url", "sub_url")
    @classmethod
    def _rtsp_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
            raise ValueError("must be an rtsp:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("put the credentials in username and password, not in the URL")
        return value
