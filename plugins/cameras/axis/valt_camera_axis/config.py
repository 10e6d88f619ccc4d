"""Settings of an Axis camera."""

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator


class AxisCameraConfig(BaseModel):
    """Where the camera answers VAPIX and RTSP, and the account to use for both."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field(min_length=1, description="Camera address, e.g. 192.0.2.30.")
    http_port: int = Field(80, ge=1, le=65535, description="HTTP port of VAPIX.")
    rtsp_port: int = Field(554, ge=1, le=65535, description="RTSP port of the camera's streams.")
    username: str = Field("root", description="VAPIX user (HTTP digest auth); also used for RTSP.")
    password: str = Field("", description="VAPIX password (stored, never shown).")
    main_profile: str = Field(
        "", description="Stream profile of the main stream (as set up on the camera); empty: H.264 at the camera's "
                        "default resolution.")
    sub_resolution: str = Field("640x360", description="Resolution of the sub stream, e.g. 640x360.")

    @field_validator("sub_resolution")
    @classmethod
    def _resolution(cls, value: str) -> str:
        if not re.fullmatch(r"\d{2,5}x\d{2,5}", value):
            raise ValueError("must look like 640x360")
        return value
