"""Settings of the ``rtmp`` transport (``[live.transport_options.rtmp]``)."""

from pydantic import BaseModel, ConfigDict, Field


class RtmpConfig(BaseModel):
    """Where the RTMP and RTMPS listeners are, and how long a silent connection is kept."""

    model_config = ConfigDict(extra="forbid")
    port: int = Field(1935, ge=0, le=65535, description="RTMP port (0: any free port; for tests).")
    tls_port: int = Field(1936, ge=0, le=65535,
                          description="RTMPS port, open when [server] tls is on (0: any free port).")
    host: str = Field("", max_length=255, description="Listen address; empty: [media] live_host, else [server] host.")
    app: str = Field("live", pattern=r"^[A-Za-z0-9_-]{1,40}$",
                     description="The RTMP application in the URL: rtmp://HOST:PORT/APP, stream name = the key.")
    public_host: str = Field("", max_length=255,
                             description="Host name devices use in the publish URL; empty: the listen address.")
    handshake_timeout_s: float = Field(
        10.0, gt=0, le=120, description="A connection that does not reach publishing in this time is closed.")
    idle_timeout_s: float = Field(10.0, gt=0, le=300,
                                  description="A publisher silent this long is disconnected (a half-dead link).")
    max_connections: int = Field(500, ge=1, le=100000, description="Connections served at once; more are refused.")
