"""Hikvision ISAPI over HTTP, and the camera's RTSP URLs: the protocol, with no Valt framework.

Standard library only, and blocking: the driver calls these methods in a worker thread. Every
request has a timeout. Network and HTTP failures leave as Valt's camera errors (the only Valt
import here), with the original exception chained, so callers see one clear message.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import quote

from valt_core.errors import CameraAuthFailed, CameraError, CameraUnreachable

TIMEOUT_S = 5.0
MAX_XML_BYTES = 1024 * 1024
MAX_JPEG_BYTES = 16 * 1024 * 1024
JPEG_MAGIC = b"\xff\xd8"

DEVICE_INFO_PATH = "/ISAPI/System/deviceInfo"


def netloc(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets as URLs need it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def stream_id(channel: int, stream: int) -> str:
    """Hikvision's stream number: channel then two digits, ``101`` = channel 1 main stream."""
    return f"{channel}{stream:02d}"


def snapshot_path(channel: int, stream: int = 1) -> str:
    """ISAPI path of a JPEG still of one stream."""
    return f"/ISAPI/Streaming/channels/{stream_id(channel, stream)}/picture"


def rtsp_url(host: str, port: int, channel: int, stream: int, username: str, password: str) -> str:
    """The RTSP URL of a stream, credentials percent-encoded (``@``, ``:`` and ``/`` included)."""
    auth = ""
    if username or password:
        auth = f"{quote(username, safe='')}:{quote(password, safe='')}@"
    return f"rtsp://{auth}{netloc(host, port)}/Streaming/Channels/{stream_id(channel, stream)}"


@dataclass(frozen=True)
class IsapiDeviceInfo:
    """What ``/ISAPI/System/deviceInfo`` says about the device."""

    model: str
    serial: str
    firmware: str
    firmware_date: str = ""
    device_name: str = ""
    manufacturer: str = ""


def _local_name(tag: str) -> str:
    # ISAPI documents carry a namespace that varies by firmware (ver10, ver20, ...).
    return tag.rsplit("}", 1)[-1]


def parse_device_info(xml: bytes) -> IsapiDeviceInfo:
    """Read a ``<DeviceInfo>`` document; :class:`CameraError` if it is not one."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise CameraError(f"the camera's device info is not valid XML ({err})") from err
    if _local_name(root.tag) != "DeviceInfo":
        raise CameraError(f"the camera answered <{_local_name(root.tag)}>, not <DeviceInfo>")
    fields = {_local_name(child.tag): (child.text or "").strip() for child in root}
    if not fields.get("model"):
        raise CameraError("the camera's device info names no model")
    return IsapiDeviceInfo(
        model=fields["model"],
        serial=fields.get("serialNumber", ""),
        firmware=fields.get("firmwareVersion", ""),
        firmware_date=fields.get("firmwareReleasedDate", ""),
        device_name=fields.get("deviceName", ""),
        manufacturer=fields.get("manufacturer", ""),
    )


class IsapiClient:
    """Talks ISAPI to one camera over HTTP with digest authentication."""

    def __init__(
        self, host: str, port: int, username: str, password: str, timeout_s: float = TIMEOUT_S
    ) -> None:
        self.base_url = f"http://{netloc(host, port)}"
        self.username = username
        self.password = password
        self.timeout_s = timeout_s

    def _opener(self) -> urllib.request.OpenerDirector:
        # A fresh opener per request: the digest handler counts retries per instance and is
        # not meant to be shared between threads.
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(None, self.base_url, self.username, self.password)
        return urllib.request.build_opener(
            # Cameras sit on the site's LAN: never send them (or their credentials) through an
            # HTTP proxy picked up from the environment.
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPDigestAuthHandler(passwords),
        )

    def get(self, path: str, limit: int) -> tuple[bytes, str]:
        """GET ``path``; the body (at most ``limit`` bytes) and its content type."""
        url = self.base_url + path
        try:
            with self._opener().open(url, timeout=self.timeout_s) as resp:
                body = resp.read(limit + 1)
                content_type = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            err.close()
            if err.code == 401:
                raise CameraAuthFailed(
                    f"camera {self.base_url} refused user {self.username!r} (HTTP 401)"
                ) from err
            raise CameraError(f"camera {self.base_url} answered HTTP {err.code} for {path}") from err
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", None) or err
            raise CameraUnreachable(f"camera {self.base_url} is unreachable: {reason}") from err
        except http.client.HTTPException as err:
            raise CameraError(f"camera {self.base_url} did not answer proper HTTP: {err!r}") from err
        if len(body) > limit:
            raise CameraError(f"camera {self.base_url} answered more than {limit} bytes for {path}")
        return body, content_type

    def device_info(self) -> IsapiDeviceInfo:
        """Model, serial number and firmware of the device."""
        body, _ = self.get(DEVICE_INFO_PATH, MAX_XML_BYTES)
        return parse_device_info(body)

    def snapshot(self, channel: int, stream: int = 1) -> bytes:
        """A JPEG still of one stream."""
        body, content_type = self.get(snapshot_path(channel, stream), MAX_JPEG_BYTES)
        if not body.startswith(JPEG_MAGIC):
            raise CameraError(f"camera {self.base_url} sent no JPEG (content type {content_type or 'none'})")
        return body
