"""Settings of a simulated camera."""

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SimCameraConfig(BaseModel):
    """Picture size, frame rate, GOP and audio of a simulated camera."""

    model_config = ConfigDict(extra="forbid")
    width: int = Field(640, ge=64, le=3840, description="Picture width in pixels (even).")
    height: int = Field(360, ge=64, le=2160, description="Picture height in pixels (a multiple of 4).")
    fps: int = Field(25, ge=1, le=60, description="Frames per second.")
    keyframe_interval: int = Field(50, ge=1, le=600, description="Frames from one keyframe to the next.")
    bitrate_kbps: int = Field(800, ge=50, le=50000, description="Target video bit rate.")
    audio: bool = Field(False, description="Add an AAC tone track (beeps each second).")
    tone_hz: float = Field(1000.0, ge=50, le=15000, description="Pitch of the beep.")
    ptz: bool = Field(
        True, description="Simulate a PTZ head: moves turn the picture; presets are kept while Valt runs.")

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even (4:2:0 video)")
        return value

    @field_validator("height")
    @classmethod
    def _multiple_of_4(cls, value: int) -> int:
        # The painter packs each half-height chroma plane into rows of the full width.
        if value % 4:
            raise ValueError(f"must be a multiple of 4 (the simulated picture needs it), e.g. {value - value % 4}")
        return value
