"""Settings of a mobile device camera, written by the devices API (``POST /api/v1/devices``)."""

from pydantic import BaseModel, ConfigDict, Field

#: Revoked keys remembered per device, so a refusal can say whose old key was tried.
MAX_REVOKED = 8


class MobileCameraConfig(BaseModel):
    """Which device this camera is and the hash of the stream key it accepts."""

    model_config = ConfigDict(extra="forbid")
    device: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$",
                        description="The device's public id (it never changes, even when the key does).")
    key_hash: str = Field("", pattern=r"^([0-9a-f]{64})?$",
                          description="SHA-256 (hex) of the stream key it accepts; empty: the key is revoked.")
    revoked_key_hashes: list[str] = Field(
        default_factory=list, max_length=MAX_REVOKED,
        description="SHA-256 of its revoked keys, newest first (refusals of them are told apart).")
