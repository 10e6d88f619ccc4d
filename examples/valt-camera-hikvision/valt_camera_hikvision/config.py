"""Per-camera settings of the ``hikvision`` driver (the ``config`` object of a camera)."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, field_validator


class HikvisionConfig(BaseModel):
    """Where the camera is and how to sign in to it."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field(min_length=1, max_length=253, description="IP address or DNS name of the camera.")
    rtsp_port: int = Field(554, ge=1, le=65535, description="RTSP port (live media).")
    http_port: int = Field(80, ge=1, le=65535, description="HTTP port (ISAPI: identity, snapshots).")
    channel: int = Field(1, ge=1, description="Video channel; 1 on a single-sensor camera.")
    username: str = Field("admin", description="Camera user name.")
    password: str = Field("", description="Camera password (masked in API answers).")

    @field_validator("host")
    @classmethod
    def _bare_host(cls, value: str) -> str:
        # People paste "http://192.168.1.64/"; the URL is built by the driver, so refuse it
        # here with a clear message instead of failing later with a confusing one.
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        if "://" in value or any(c in value for c in "/@?# "):
            raise ValueError("give only the address or name, without scheme, path or user")
        value = value.removeprefix("[").removesuffix("]")
        if ":" in value:
            # Only an IPv6 address has colons; "10.0.0.5:8000" means a port in the wrong place.
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                raise ValueError("give the ports as rtsp_port and http_port, not in host") from None
        return value
