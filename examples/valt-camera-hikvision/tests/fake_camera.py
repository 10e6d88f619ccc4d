"""A stand-in Hikvision camera for the tests: the two ISAPI resources the driver reads, behind
HTTP digest authentication (RFC 7616, MD5, qop=auth), served on 127.0.0.1.

It is written from the published protocols (HTTP digest, Hikvision ISAPI), not from the
driver's client, so a client that gets digest or the paths wrong fails here too.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEVICE_INFO_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<DeviceInfo version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<deviceName>Interview Room 3</deviceName>
<model>DS-2CD2143G2-I</model>
<serialNumber>DS-2CD2143G2-I20240101AAWRL00000001</serialNumber>
<macAddress>44:19:b6:00:00:01</macAddress>
<firmwareVersion>V5.7.3</firmwareVersion>
<firmwareReleasedDate>build 230112</firmwareReleasedDate>
<deviceType>IPCamera</deviceType>
</DeviceInfo>
"""

# Small but well-formed enough for the checks a client can make: SOI ... EOI markers.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(64) + b"\xff\xd9"

NOT_FOUND_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<ResponseStatus version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<statusCode>4</statusCode><statusString>Invalid Operation</statusString><subStatusCode>notSupport</subStatusCode>
</ResponseStatus>
"""

_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class FakeIsapiCamera:
    """``with FakeIsapiCamera(user, password) as cam:`` serves on ``cam.port`` until the block ends."""

    realm = "IP Camera(00001)"

    def __init__(self, username: str, password: str, *, channel: int = 1, picture: bytes = JPEG) -> None:
        self.username = username
        self.password = password
        self.resources = {
            "/ISAPI/System/deviceInfo": ("application/xml", DEVICE_INFO_XML),
            f"/ISAPI/Streaming/channels/{channel}01/picture": ("image/jpeg", picture),
        }
        self.nonces: set[str] = set()
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeIsapiCamera":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def authorized(self, method: str, header: str) -> bool:
        """True when ``header`` is a correct digest answer to one of our challenges."""
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "digest":
            return False
        p = {m.group(1): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(rest)}
        if p.get("username") != self.username or p.get("nonce") not in self.nonces or p.get("realm") != self.realm:
            return False
        ha1 = _md5(f"{self.username}:{self.realm}:{self.password}")
        ha2 = _md5(f"{method}:{p.get('uri', '')}")
        expected = _md5(f"{ha1}:{p['nonce']}:{p.get('nc', '')}:{p.get('cnonce', '')}:{p.get('qop', '')}:{ha2}")
        return secrets.compare_digest(expected, p.get("response", ""))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                camera.requests.append(self.path)
                if not camera.authorized("GET", self.headers.get("Authorization", "")):
                    nonce = secrets.token_hex(16)
                    camera.nonces.add(nonce)
                    challenge = f'Digest qop="auth", realm="{camera.realm}", nonce="{nonce}", stale="FALSE"'
                    self._send(401, "text/html", b"<html>401 Unauthorized</html>", {"WWW-Authenticate": challenge})
                    return
                content_type, body = camera.resources.get(self.path, ("application/xml", None))
                if body is None:
                    self._send(404, content_type, NOT_FOUND_XML)
                else:
                    self._send(200, content_type, body)

        return Handler
