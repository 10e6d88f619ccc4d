"""The camera driver contract."""

from .base import (
    Capability,
    CameraDriver,
    DeviceInfo,
    DiscoveredCamera,
    MediaInput,
    StreamProfile,
)

__all__ = ["Capability", "CameraDriver", "DeviceInfo", "DiscoveredCamera", "MediaInput", "StreamProfile"]
