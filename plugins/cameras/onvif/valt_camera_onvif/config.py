"""Settings of an ONVIF camera."""

from pydantic import BaseModel, ConfigDict, Field


class OnvifCameraConfig(BaseModel):
    """Where the device answers ONVIF, and the account to use (also used for its RTSP streams)."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field(min_length=1, description="Device address, e.g. 192.0.2.20 (as discovery reports it).")
    port: int = Field(80, ge=1, le=65535, description="HTTP port of the ONVIF device service.")
    username: str = Field("", description="ONVIF user (WS-Security); most devices use it for RTSP too.")
    password: str = Field("", description="ONVIF password (stored, never shown).")
    main_profile: str = Field(
        "", description="Media profile token of the main stream; empty: the device's first profile.")
    sub_profile: str = Field(
        "", description="Media profile token of the sub stream; empty: the device's second profile, if any.")
    clock_warning_s: float = Field(
        5.0, gt=0, description="Warn when the device clock is off by more than this many seconds.")
