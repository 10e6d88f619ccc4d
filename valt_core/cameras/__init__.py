"""The camera driver contract."""

from .base import (
    PTZ_CAPABILITIES,
    CameraDriver,
    Capability,
    DeviceInfo,
    DiscoveredCamera,
    MediaInput,
    Preset,
    PtzPosition,
    StreamProfile,
    rtsp_url_with_credentials,
)

__all__ = ["PTZ_CAPABILITIES", "Capability", "CameraDriver", "DeviceInfo", "DiscoveredCamera", "MediaInput", "Preset",
           "PtzPosition", "StreamProfile", "rtsp_url_with_credentials"]
