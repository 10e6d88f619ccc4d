"""The camera driver contract."""

from .base import (
    Capability,
    CameraDriver,
    DeviceInfo,
    DiscoveredCamera,
    MediaInput,
    Preset,
    PtzPosition,
    StreamProfile,
    rtsp_url_with_credentials,
)

__all__ = ["Capability", "CameraDriver", "DeviceInfo", "DiscoveredCamera", "MediaInput", "Preset",
           "PtzPosition", "StreamProfile", "rtsp_url_with_credentials"]
