"""An ONVIF IP camera for tests: SOAP over HTTP that the real onvif-zeep-async client talks to.

Run with the project's venv python. Prints ``READY http://HOST:PORT/onvif/device_service`` once
it listens, then serves until SIGTERM/SIGINT. The video itself comes from a separate RTSP
server (tests/peers/rtsp_camera.py): this process only answers GetStreamUri with its URL.

Written from the ONVIF WSDLs (device ver10, media ver10, PTZ ver20, schema ver10) and the
WS-Discovery 2005/04 specification. What it plays:

* Device, Media and PTZ services, SOAP 1.2, each at its own path. Faults carry the ONVIF
  subcodes (ter:NotAuthorized, ter:ActionNotSupported, ter:InvalidArgVal/ter:NoToken, ...) with
  HTTP 400 for env:Sender faults and 500 for env:Receiver ones, as the SOAP 1.2 binding says.
* WS-Security UsernameToken: PasswordDigest and PasswordText are both accepted. Only
  GetSystemDateAndTime, GetCapabilities and GetServices may be called without credentials (and
  ignore any sent, right or wrong), as on real devices. A digest's ``Created`` must be within
  ``--created-window-s`` (default 300) of the *device* clock, which ``--clock-offset-s`` moves: a
  client that ignores a skewed camera clock is refused, as by strict real cameras; 0 turns the
  check off. Nonces are not remembered (no replay protection).
* A simple PTZ head: continuous moves integrate velocity over time (full speed 0.5 units/s) until
  Stop, an end stop or their Timeout (default 10 s); absolute and relative moves and presets jump
  at once; everything clamps to the ranges (pan, tilt -1..1, zoom 0..1).
* A JPEG snapshot behind HTTP Digest auth (MD5, qop=auth).
* With ``--discovery-address``, a WS-Discovery responder answering Probes unicast.
* ``GET /_sim/state`` (no auth): JSON of the PTZ state and request counters, for tests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import math
import re
import secrets
import signal
import socket
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from urllib.parse import quote

from aiohttp import web
from lxml import etree

NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "ter": "http://www.onvif.org/ver10/error",
    "tt": "http://www.onvif.org/ver10/schema",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",  # the one WS-Discovery 2005/04 uses
    "d": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "dn": "http://www.onvif.org/ver10/network/wsdl",
}
# Requests are untrusted input: no entities, no network, no huge trees.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
# Operations a real device answers before authentication (ONVIF access class PRE_AUTH).
PRE_AUTH = {"GetSystemDateAndTime", "GetCapabilities", "GetServices"}
SERVICES = {  # URL path -> (prefix of the service namespace, service version)
    "/onvif/device_service": ("tds", (2, 60)),
    "/onvif/media_service": ("trt", (2, 60)),
    "/onvif/ptz_service": ("tptz", (2, 60)),
}
SPACE = "http://www.onvif.org/ver10/tptz/"
# The generic PTZ spaces of the PTZ spec: (kind of space, URI, x range, y range or None).
PTZ_SPACES = [
    ("AbsolutePanTiltPositionSpace", "PanTiltSpaces/PositionGenericSpace", (-1, 1), (-1, 1)),
    ("AbsoluteZoomPositionSpace", "ZoomSpaces/PositionGenericSpace", (0, 1), None),
    ("RelativePanTiltTranslationSpace", "PanTiltSpaces/TranslationGenericSpace", (-1, 1), (-1, 1)),
    ("RelativeZoomTranslationSpace", "ZoomSpaces/TranslationGenericSpace", (-1, 1), None),
    ("ContinuousPanTiltVelocitySpace", "PanTiltSpaces/VelocityGenericSpace", (-1, 1), (-1, 1)),
    ("ContinuousZoomVelocitySpace", "ZoomSpaces/VelocityGenericSpace", (-1, 1), None),
    ("PanTiltSpeedSpace", "PanTiltSpaces/GenericSpeedSpace", (0, 1), None),
    ("ZoomSpeedSpace", "ZoomSpaces/ZoomGenericSpeedSpace", (0, 1), None),
]
# What WS-Discovery Probes may ask for: (namespace, local name) of our Types.
DEVICE_TYPES = frozenset({(NS["dn"], "NetworkVideoTransmitter"), (NS["tds"], "Device")})
DEFAULT_PTZ_TIMEOUT_S = 10.0
MAX_PRESETS = 100


def q(name: str) -> str:
    """``"tt:Name"`` -> ``"{http://www.onvif.org/ver10/schema}Name"``."""
    prefix, local = name.split(":")
    return f"{{{NS[prefix]}}}{local}"


def E(name: str, *children: etree._Element | None, text: object = None, **attrs: object) -> etree._Element:
    """An element; None children are skipped. Prefixes are resolved against the envelope's
    declarations when the element is attached (lxml reuses the ancestor's prefix)."""
    el = etree.Element(q(name), {k: _xml_value(v) for k, v in attrs.items() if v is not None})
    el.extend(c for c in children if c is not None)
    if text is not None:
        el.text = _xml_value(text)
    return el


def _xml_value(v: object) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def envelope(*body: etree._Element, header: list[etree._Element] = ()) -> bytes:
    """A SOAP 1.2 envelope declaring every prefix on its root, so QName texts such as
    ``ter:NotAuthorized`` or ``dn:NetworkVideoTransmitter`` always resolve."""
    root = etree.Element(q("env:Envelope"), nsmap=NS)
    if header:
        root.append(E("env:Header", *header))
    root.append(E("env:Body", *body))
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


class Fault(Exception):
    """A SOAP fault: ``code`` (env:Sender/env:Receiver) then ONVIF subcodes, outermost first."""

    def __init__(self, code: str, *subcodes: str, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.code, self.subcodes, self.reason = code, subcodes, reason
        # SOAP 1.2 HTTP binding: Sender faults are 400 Bad Request, Receiver faults 500.
        self.status = status or (400 if code == "env:Sender" else 500)

    def xml(self) -> bytes:
        code = E("env:Code", E("env:Value", text=self.code))
        parent = code
        for sub in self.subcodes:
            parent.append(E("env:Subcode", E("env:Value", text=sub)))
            parent = parent[-1]
        reason = E("env:Reason", E("env:Text", text=self.reason))
        reason[0].set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        return envelope(E("env:Fault", code, reason))


def invalid_arg(subcode: str, reason: str) -> Fault:
    """The ONVIF fault for a bad argument: env:Sender / ter:InvalidArgVal / ``subcode``."""
    return Fault("env:Sender", "ter:InvalidArgVal", subcode, reason=reason)


def parse_duration(text: str | None, default: float) -> float:
    """Seconds in an xs:duration such as ``PT1M30.5S`` (the forms PTZ timeouts use)."""
    m = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?", (text or "").strip())
    if not text or not m:
        return default
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


class PtzHead:
    """The simulated pan/tilt/zoom head. Axes in the generic spaces: pan and tilt in [-1, 1],
    zoom in [0, 1]. Continuous moves integrate velocity lazily, whenever the state is read."""

    FULL_SPEED = 0.5  # units per second at velocity 1
    LIMITS = ((-1.0, 1.0), (-1.0, 1.0), (0.0, 1.0))

    def __init__(self) -> None:
        self.position = [0.0, 0.0, 0.0]
        self.velocity = [0.0, 0.0, 0.0]
        self.deadline = math.inf  # when the current continuous move times out
        self.updated = time.monotonic()
        self.presets: dict[str, tuple[str, list[float]]] = {}  # token -> (name, position)
        self._preset_ids = iter(range(1, 1 << 30))

    def advance(self) -> None:
        """Bring the position up to now."""
        now = time.monotonic()
        dt = max(0.0, min(now, self.deadline) - self.updated)
        for i, (lo, hi) in enumerate(self.LIMITS):
            if self.velocity[i]:
                wanted = self.position[i] + self.velocity[i] * self.FULL_SPEED * dt
                self.position[i] = min(hi, max(lo, wanted))
                if wanted != self.position[i]:
                    self.velocity[i] = 0.0  # reached an end stop: that axis halts
        self.updated = now
        if now >= self.deadline:
            self.velocity, self.deadline = [0.0, 0.0, 0.0], math.inf

    def move(self, velocity: list[float | None], timeout_s: float) -> None:
        """ContinuousMove. An omitted component (None) stops that axis."""
        self.advance()
        self.velocity = [min(1.0, max(-1.0, v or 0.0)) for v in velocity]
        self.deadline = time.monotonic() + timeout_s

    def stop(self, pan_tilt: bool, zoom: bool) -> None:
        """Stop: halt the axes asked for where they are."""
        self.advance()
        if pan_tilt:
            self.velocity[0] = self.velocity[1] = 0.0
        if zoom:
            self.velocity[2] = 0.0

    def go(self, target: list[float | None]) -> None:
        """Jump to ``target`` (None keeps that axis); an axis given stops moving."""
        self.advance()
        for i, ((lo, hi), v) in enumerate(zip(self.LIMITS, target)):
            if v is not None:
                self.position[i] = min(hi, max(lo, v))
                self.velocity[i] = 0.0

    def translate(self, delta: list[float | None]) -> None:
        """RelativeMove: jump by ``delta`` (None leaves that axis alone)."""
        self.advance()
        self.go([None if d is None else p + d for p, d in zip(self.position, delta)])

    def set_preset(self, name: str | None, token: str | None) -> str:
        """Store the current position; a known ``token`` is overwritten. Returns the token."""
        self.advance()
        if token and token not in self.presets:
            raise invalid_arg("ter:NoToken", f"no preset {token!r}")
        if name and any(n == name and t != token for t, (n, _) in self.presets.items()):
            raise invalid_arg("ter:PresetExist", f"a preset is already named {name!r}")
        if not token and len(self.presets) >= MAX_PRESETS:
            raise Fault("env:Receiver", "ter:Action", "ter:TooManyPresets", reason="preset memory full")
        token = token or f"preset-{next(self._preset_ids)}"
        name = name or (self.presets[token][0] if token in self.presets else token)
        self.presets[token] = (name, list(self.position))
        return token

    def preset(self, token: str) -> tuple[str, list[float]]:
        """(name, position) of a stored preset; ``ter:NoToken`` if there is none."""
        if token not in self.presets:
            raise invalid_arg("ter:NoToken", f"no preset {token!r}")
        return self.presets[token]


class Device:
    """One simulated camera: configuration from the command line, the PTZ head and counters.

    A method ``<prefix>_<Operation>(op, request)`` answers ``Operation`` of the service with that
    namespace prefix (tds, trt, tptz): it gets the request's body element and returns the reply's.
    Anything without such a method is ``ter:ActionNotSupported``.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ptz = PtzHead() if args.ptz else None
        self.port = 0  # known once bound
        self.requests = 0
        self.auth_failures = 0
        self.operations: dict[str, int] = {}
        self.endpoint = f"urn:uuid:{uuid.uuid4()}"  # WS-Discovery identity, stable per process
        w, h = (int(v) for v in args.main_size.split("x"))
        self.profiles = {"main": (w, h, args.rtsp_url)}
        if args.sub_rtsp_url:
            self.profiles["sub"] = (640, 360, args.sub_rtsp_url)
        self.realm = args.name
        self.digest_nonces: set[str] = set()
        self.jpegs: dict[str, bytes] = {}

    # -- plumbing -----------------------------------------------------------------------

    def clock(self) -> datetime:
        """The device's clock, in UTC."""
        return datetime.now(timezone.utc) + timedelta(seconds=self.args.clock_offset_s)

    def advertised_host(self) -> str:
        """The host to put in URLs when no request says how we were reached (READY, discovery)."""
        host = self.args.host
        if host in ("0.0.0.0", "::", ""):
            host = self.args.discovery_address or "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    def scopes(self) -> list[str]:
        """The ONVIF scopes (GetScopes, ProbeMatches)."""
        base = "onvif://www.onvif.org/"
        return [base + "type/video_encoder", *([base + "type/ptz"] if self.ptz else []),
                base + "Profile/Streaming", base + "name/" + quote(self.args.name),
                base + "hardware/" + quote(self.args.model), base + "location/valt-test"]

    async def soap(self, request: web.Request) -> web.Response:
        """Every SOAP endpoint: parse, authenticate, dispatch to ``<prefix>_<Operation>``."""
        self.requests += 1
        prefix, _ = SERVICES[request.path]
        try:
            try:
                doc = etree.fromstring(await request.read(), PARSER)
            except etree.XMLSyntaxError as err:
                raise Fault("env:Sender", "ter:WellFormed", reason=f"not XML: {err}") from None
            body = doc.find("env:Body", NS)
            op = body[0] if body is not None and len(body) else None
            if op is None:
                raise Fault("env:Sender", "ter:MissingAttr", reason="empty SOAP body")
            qname = etree.QName(op)
            self.operations[qname.localname] = self.operations.get(qname.localname, 0) + 1
            handler = getattr(self, f"{prefix}_{qname.localname}", None)
            if handler is None or qname.namespace != NS[prefix]:
                raise Fault("env:Receiver", "ter:ActionNotSupported",
                            reason=f"{qname.localname} is not supported by {request.path}")
            if not (prefix == "tds" and qname.localname in PRE_AUTH):
                self.authenticate(doc.find("env:Header", NS))
            reply = handler(op, request)
        except Fault as fault:
            return web.Response(body=fault.xml(), status=fault.status,
                                content_type="application/soap+xml", charset="utf-8")
        return web.Response(body=envelope(reply), content_type="application/soap+xml", charset="utf-8")

    def authenticate(self, header: etree._Element | None) -> None:
        """Check the WS-Security UsernameToken; raise ``ter:NotAuthorized`` if it is not right."""
        token = None if header is None else header.find("wsse:Security/wsse:UsernameToken", NS)
        try:
            if token is None:
                raise ValueError("no WS-Security UsernameToken")
            password = token.find("wsse:Password", NS)
            given = (password.text or "").strip() if password is not None else ""
            if token.findtext("wsse:Username", "", NS).strip() != self.args.user:
                raise ValueError("unknown user")
            if password is not None and password.get("Type", "").endswith("#PasswordDigest"):
                nonce = base64.b64decode(token.findtext("wsse:Nonce", "", NS))
                created = token.findtext("wsu:Created", "", NS).strip()
                digest = hashlib.sha1(nonce + created.encode() + self.args.password.encode()).digest()
                if not hmac.compare_digest(base64.b64encode(digest).decode(), given):
                    raise ValueError("wrong password")
                created_at = datetime.fromisoformat(created)
                if created_at.tzinfo is None:  # xs:dateTime without a zone: take it as UTC
                    created_at = created_at.replace(tzinfo=timezone.utc)
                skew = abs((created_at - self.clock()).total_seconds())
                if self.args.created_window_s and skew > self.args.created_window_s:
                    raise ValueError(f"Created is {skew:.0f} s away from the device clock")
            elif not hmac.compare_digest(given.encode(), self.args.password.encode()):
                raise ValueError("wrong password")
        except (ValueError, TypeError) as err:  # also a malformed Nonce or Created
            self.auth_failures += 1
            raise Fault("env:Sender", "ter:NotAuthorized", reason=f"Sender not authorized: {err}") from None

    @staticmethod
    def base_url(request: web.Request) -> str:
        """Where the client reached us (its Host header): "the scheme and IP part shall match the
        one used in the request" (GetServices), so a client is never sent to another address."""
        return f"http://{request.host}"

    def profile(self, op: etree._Element, prefix: str) -> str:
        """The request's ProfileToken, which must name one of our profiles."""
        token = op.findtext(f"{prefix}:ProfileToken", "", NS).strip()
        if token not in self.profiles:
            raise invalid_arg("ter:NoProfile", f"no profile {token!r}")
        return token

    # -- device service -----------------------------------------------------------------

    def tds_GetSystemDateAndTime(self, op, request):
        now = self.clock()

        def stamp(tag: str) -> etree._Element:
            return E(tag, E("tt:Time", E("tt:Hour", text=now.hour), E("tt:Minute", text=now.minute),
                            E("tt:Second", text=now.second)),
                     E("tt:Date", E("tt:Year", text=now.year), E("tt:Month", text=now.month),
                       E("tt:Day", text=now.day)))

        return E("tds:GetSystemDateAndTimeResponse", E(  # the device lives in UTC: local time = UTC
            "tds:SystemDateAndTime", E("tt:DateTimeType", text="Manual"), E("tt:DaylightSavings", text=False),
            E("tt:TimeZone", E("tt:TZ", text="UTC0")), stamp("tt:UTCDateTime"), stamp("tt:LocalDateTime")))

    def tds_GetCapabilities(self, op, request):
        wanted = {c.text for c in op.findall("tds:Category", NS)} or {"All"}
        base = self.base_url(request)
        if "PTZ" in wanted and not self.ptz:
            raise Fault("env:Receiver", "ter:ActionNotSupported", "ter:NoSuchService", reason="no PTZ")
        if not wanted & {"All", "Device", "Media", "PTZ"}:
            raise Fault("env:Receiver", "ter:ActionNotSupported", "ter:NoSuchService",
                        reason=f"no {', '.join(sorted(wanted))} service")
        flags = ("DiscoveryResolve", "DiscoveryBye", "RemoteDiscovery", "SystemBackup",
                 "SystemLogging", "FirmwareUpgrade")
        device = E("tt:Device", E("tt:XAddr", text=base + "/onvif/device_service"),
                   E("tt:System", *(E(f"tt:{f}", text=f == "DiscoveryResolve") for f in flags),
                     E("tt:SupportedVersions", E("tt:Major", text=2), E("tt:Minor", text=60))))
        media = E("tt:Media", E("tt:XAddr", text=base + "/onvif/media_service"), E(
            "tt:StreamingCapabilities", E("tt:RTPMulticast", text=False), E("tt:RTP_TCP", text=True),
            E("tt:RTP_RTSP_TCP", text=True)))
        ptz = E("tt:PTZ", E("tt:XAddr", text=base + "/onvif/ptz_service")) if self.ptz else None
        def pick(cat, el):
            return el if wanted & {"All", cat} else None

        return E("tds:GetCapabilitiesResponse", E(
            "tds:Capabilities", pick("Device", device), pick("Media", media), pick("PTZ", ptz)))

    def service_capabilities(self, prefix: str) -> etree._Element:
        """The ``<prefix>:Capabilities`` element of a service (GetServices, GetServiceCapabilities)."""
        if prefix == "tds":
            return E("tds:Capabilities", E("tds:Network", IPFilter=False, ZeroConfiguration=False,
                                           IPVersion6=False, DynDNS=False),
                     E("tds:Security", UsernameToken=True, HttpDigest=True),
                     E("tds:System", DiscoveryResolve=bool(self.args.discovery_address)))
        if prefix == "trt":
            return E("trt:Capabilities",
                     E("trt:ProfileCapabilities", MaximumNumberOfProfiles=len(self.profiles)),
                     E("trt:StreamingCapabilities", RTPMulticast=False, RTP_TCP=True, RTP_RTSP_TCP=True),
                     SnapshotUri=True)
        return E("tptz:Capabilities", EFlip=False, Reverse=False)

    def tds_GetServices(self, op, request):
        include = op.findtext("tds:IncludeCapability", "false", NS).strip() in ("true", "1")
        services = []
        for path, (prefix, (major, minor)) in SERVICES.items():
            if prefix == "tptz" and not self.ptz:
                continue
            services.append(E(
                "tds:Service", E("tds:Namespace", text=NS[prefix]),
                E("tds:XAddr", text=self.base_url(request) + path),
                E("tds:Capabilities", self.service_capabilities(prefix)) if include else None,
                E("tds:Version", E("tt:Major", text=major), E("tt:Minor", text=minor))))
        return E("tds:GetServicesResponse", *services)

    def tds_GetServiceCapabilities(self, op, request):
        return E("tds:GetServiceCapabilitiesResponse", self.service_capabilities("tds"))

    def tds_GetDeviceInformation(self, op, request):
        a = self.args
        return E("tds:GetDeviceInformationResponse", E("tds:Manufacturer", text=a.manufacturer),
                 E("tds:Model", text=a.model), E("tds:FirmwareVersion", text=a.firmware),
                 E("tds:SerialNumber", text=a.serial), E("tds:HardwareId", text=a.model))

    def tds_GetScopes(self, op, request):
        return E("tds:GetScopesResponse", *(
            E("tds:Scopes", E("tt:ScopeDef", text="Fixed"), E("tt:ScopeItem", text=s)) for s in self.scopes()))

    # -- media service ------------------------------------------------------------------

    def profile_xml(self, tag: str, token: str) -> etree._Element:
        width, height, _ = self.profiles[token]
        main_w, main_h, _ = self.profiles["main"]
        return E(tag, E("tt:Name", text=token), E(
            "tt:VideoSourceConfiguration", E("tt:Name", text="source"),
            E("tt:UseCount", text=len(self.profiles)), E("tt:SourceToken", text="vsrc0"),
            E("tt:Bounds", x=0, y=0, width=main_w, height=main_h), token="vsc0"),
            E("tt:VideoEncoderConfiguration", E("tt:Name", text=f"{token} H264"), E("tt:UseCount", text=1),
              E("tt:Encoding", text="H264"),
              E("tt:Resolution", E("tt:Width", text=width), E("tt:Height", text=height)),
              E("tt:Quality", text=5), E("tt:RateControl", E("tt:FrameRateLimit", text=25),
                                         E("tt:EncodingInterval", text=1), E("tt:BitrateLimit", text=2048)),
              E("tt:H264", E("tt:GovLength", text=50), E("tt:H264Profile", text="Main")),
              E("tt:Multicast", E("tt:Address", E("tt:Type", text="IPv4"), E("tt:IPv4Address", text="0.0.0.0")),
                E("tt:Port", text=0), E("tt:TTL", text=1), E("tt:AutoStart", text=False)),
              E("tt:SessionTimeout", text="PT60S"), token=f"vec_{token}"),
            self.ptz_configuration("tt:PTZConfiguration") if self.ptz else None, token=token, fixed=True)

    def trt_GetProfiles(self, op, request):
        return E("trt:GetProfilesResponse", *(self.profile_xml("trt:Profiles", t) for t in self.profiles))

    def trt_GetProfile(self, op, request):
        return E("trt:GetProfileResponse", self.profile_xml("trt:Profile", self.profile(op, "trt")))

    def trt_GetVideoSources(self, op, request):
        w, h, _ = self.profiles["main"]
        return E("trt:GetVideoSourcesResponse", E("trt:VideoSources", E("tt:Framerate", text=25), E(
            "tt:Resolution", E("tt:Width", text=w), E("tt:Height", text=h)), token="vsrc0"))

    def media_uri(self, tag: str, uri: str) -> etree._Element:
        return E(tag, E("trt:MediaUri", E("tt:Uri", text=uri), E("tt:InvalidAfterConnect", text=False),
                        E("tt:InvalidAfterReboot", text=False), E("tt:Timeout", text="PT0S")))

    def trt_GetStreamUri(self, op, request):
        return self.media_uri("trt:GetStreamUriResponse", self.profiles[self.profile(op, "trt")][2])

    def trt_GetSnapshotUri(self, op, request):
        uri = f"{self.base_url(request)}/onvif/snapshot.jpg?profile={self.profile(op, 'trt')}"
        return self.media_uri("trt:GetSnapshotUriResponse", uri)

    def trt_GetServiceCapabilities(self, op, request):
        return E("trt:GetServiceCapabilitiesResponse", self.service_capabilities("trt"))

    # -- PTZ service --------------------------------------------------------------------

    def ptz_configuration(self, tag: str) -> etree._Element:
        generic = {kind: SPACE + uri for kind, uri, *_ in PTZ_SPACES}
        return E(
            tag, E("tt:Name", text="PTZ"), E("tt:UseCount", text=len(self.profiles)),
            E("tt:NodeToken", text="node0"),
            # "Pant" is how the ONVIF schema itself spells it; clients parse by that name.
            E("tt:DefaultAbsolutePantTiltPositionSpace", text=generic["AbsolutePanTiltPositionSpace"]),
            *(E(f"tt:Default{kind}", text=generic[kind]) for kind in (
                "AbsoluteZoomPositionSpace", "RelativePanTiltTranslationSpace", "RelativeZoomTranslationSpace",
                "ContinuousPanTiltVelocitySpace", "ContinuousZoomVelocitySpace")),
            E("tt:DefaultPTZSpeed", E("tt:PanTilt", x=1, y=1, space=generic["PanTiltSpeedSpace"]),
              E("tt:Zoom", x=1, space=generic["ZoomSpeedSpace"])),
            E("tt:DefaultPTZTimeout", text=f"PT{DEFAULT_PTZ_TIMEOUT_S:g}S"),
            E("tt:PanTiltLimits", self.space_xml("tt:Range", *PTZ_SPACES[0][1:])),
            E("tt:ZoomLimits", self.space_xml("tt:Range", *PTZ_SPACES[1][1:])), token="ptz0")

    @staticmethod
    def space_xml(tag: str, uri: str, xr: tuple, yr: tuple | None) -> etree._Element:
        def rng(name: str, r: tuple) -> etree._Element:
            return E(name, E("tt:Min", text=float(r[0])), E("tt:Max", text=float(r[1])))

        return E(tag, E("tt:URI", text=SPACE + uri), rng("tt:XRange", xr), rng("tt:YRange", yr) if yr else None)

    def spaces_xml(self, tag: str) -> etree._Element:
        return E(tag, *(self.space_xml(f"tt:{kind}", uri, xr, yr) for kind, uri, xr, yr in PTZ_SPACES))

    def tptz_GetNodes(self, op, request):
        return E("tptz:GetNodesResponse", self.node_xml("tptz:PTZNode"))

    def tptz_GetNode(self, op, request):
        if op.findtext("tptz:NodeToken", "", NS).strip() != "node0":
            raise invalid_arg("ter:NoEntity", "no such PTZ node")
        return E("tptz:GetNodeResponse", self.node_xml("tptz:PTZNode"))

    def node_xml(self, tag: str) -> etree._Element:
        return E(tag, E("tt:Name", text="PTZ head"), self.spaces_xml("tt:SupportedPTZSpaces"),
                 E("tt:MaximumNumberOfPresets", text=MAX_PRESETS), E("tt:HomeSupported", text=False),
                 token="node0", FixedHomePosition=False)

    def tptz_GetConfigurations(self, op, request):
        return E("tptz:GetConfigurationsResponse", self.ptz_configuration("tptz:PTZConfiguration"))

    def tptz_GetConfiguration(self, op, request):
        if op.findtext("tptz:PTZConfigurationToken", "", NS).strip() != "ptz0":
            raise invalid_arg("ter:NoConfig", "no such PTZ configuration")
        return E("tptz:GetConfigurationResponse", self.ptz_configuration("tptz:PTZConfiguration"))

    def tptz_GetConfigurationOptions(self, op, request):
        if op.findtext("tptz:ConfigurationToken", "", NS).strip() != "ptz0":
            raise invalid_arg("ter:NoConfig", "no such PTZ configuration")
        return E("tptz:GetConfigurationOptionsResponse", E(
            "tptz:PTZConfigurationOptions", self.spaces_xml("tt:Spaces"),
            E("tt:PTZTimeout", E("tt:Min", text="PT1S"), E("tt:Max", text="PT60S"))))

    def tptz_GetServiceCapabilities(self, op, request):
        return E("tptz:GetServiceCapabilitiesResponse", self.service_capabilities("tptz"))

    @staticmethod
    def vector(el: etree._Element | None) -> list[float | None]:
        """[pan, tilt, zoom] of a tt:PTZVector or tt:PTZSpeed; None where a part is absent."""
        pt = None if el is None else el.find("tt:PanTilt", NS)
        zoom = None if el is None else el.find("tt:Zoom", NS)
        try:
            return [None if pt is None else float(pt.get("x")), None if pt is None else float(pt.get("y")),
                    None if zoom is None else float(zoom.get("x"))]
        except (TypeError, ValueError):
            raise invalid_arg("ter:InvalidPosition", "PanTilt needs numeric x and y, Zoom a numeric x") from None

    def tptz_ContinuousMove(self, op, request):
        self.profile(op, "tptz")
        timeout = parse_duration(op.findtext("tptz:Timeout", None, NS), DEFAULT_PTZ_TIMEOUT_S)
        self.ptz.move(self.vector(op.find("tptz:Velocity", NS)), timeout)
        return E("tptz:ContinuousMoveResponse")

    def tptz_Stop(self, op, request):
        self.profile(op, "tptz")
        def flag(name):
            return op.findtext(f"tptz:{name}", "true", NS).strip() in ("true", "1")

        self.ptz.stop(flag("PanTilt"), flag("Zoom"))
        return E("tptz:StopResponse")

    def tptz_AbsoluteMove(self, op, request):
        self.profile(op, "tptz")
        self.ptz.go(self.vector(op.find("tptz:Position", NS)))
        return E("tptz:AbsoluteMoveResponse")

    def tptz_RelativeMove(self, op, request):
        self.profile(op, "tptz")
        self.ptz.translate(self.vector(op.find("tptz:Translation", NS)))
        return E("tptz:RelativeMoveResponse")

    def position_xml(self, tag: str, pos: list[float]) -> etree._Element:
        return E(tag, E("tt:PanTilt", x=pos[0], y=pos[1], space=SPACE + PTZ_SPACES[0][1]),
                 E("tt:Zoom", x=pos[2], space=SPACE + PTZ_SPACES[1][1]))

    def tptz_GetStatus(self, op, request):
        self.profile(op, "tptz")
        head = self.ptz
        head.advance()
        def state(moving):
            return "MOVING" if moving else "IDLE"

        return E("tptz:GetStatusResponse", E(
            "tptz:PTZStatus", self.position_xml("tt:Position", head.position),
            E("tt:MoveStatus", E("tt:PanTilt", text=state(head.velocity[0] or head.velocity[1])),
              E("tt:Zoom", text=state(head.velocity[2]))),
            E("tt:UtcTime", text=self.clock().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")))

    def tptz_GetPresets(self, op, request):
        self.profile(op, "tptz")
        return E("tptz:GetPresetsResponse", *(
            E("tptz:Preset", E("tt:Name", text=name), self.position_xml("tt:PTZPosition", pos), token=token)
            for token, (name, pos) in self.ptz.presets.items()))

    def tptz_SetPreset(self, op, request):
        self.profile(op, "tptz")
        token = self.ptz.set_preset(op.findtext("tptz:PresetName", "", NS).strip() or None,
                                    op.findtext("tptz:PresetToken", "", NS).strip() or None)
        return E("tptz:SetPresetResponse", E("tptz:PresetToken", text=token))

    def tptz_GotoPreset(self, op, request):
        self.profile(op, "tptz")
        self.ptz.go(self.ptz.preset(op.findtext("tptz:PresetToken", "", NS).strip())[1])
        return E("tptz:GotoPresetResponse")

    def tptz_RemovePreset(self, op, request):
        self.profile(op, "tptz")
        token = op.findtext("tptz:PresetToken", "", NS).strip()
        self.ptz.preset(token)
        del self.ptz.presets[token]
        return E("tptz:RemovePresetResponse")

    # -- snapshot and introspection -----------------------------------------------------

    def digest_ok(self, request: web.Request) -> bool:
        """Check an RFC 7616 Digest ``Authorization`` (MD5, qop=auth) against our user."""
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("digest "):
            return False
        fields = {k.lower(): a or b for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]*))', header[7:])}
        ha1 = hashlib.md5(f"{self.args.user}:{self.realm}:{self.args.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{request.method}:{fields.get('uri', '')}".encode()).hexdigest()
        expected = hashlib.md5(":".join([ha1, fields.get("nonce", ""), fields.get("nc", ""),
                                         fields.get("cnonce", ""), "auth", ha2]).encode()).hexdigest()
        ok = (fields.get("username") == self.args.user and fields.get("nonce") in self.digest_nonces
              and fields.get("qop") == "auth" and fields.get("uri") == request.path_qs
              and hmac.compare_digest(expected, fields.get("response", "")))
        self.auth_failures += not ok
        return ok

    async def snapshot(self, request: web.Request) -> web.Response:
        """GET /onvif/snapshot.jpg?profile=TOKEN: a JPEG of the profile's size, behind Digest auth."""
        if not self.digest_ok(request):
            nonce = secrets.token_hex(16)
            self.digest_nonces.add(nonce)
            challenge = f'Digest realm="{self.realm}", qop="auth", nonce="{nonce}", algorithm=MD5'
            return web.Response(status=401, text="401 Unauthorized", headers={"WWW-Authenticate": challenge})
        token = request.query.get("profile", "main")
        if token not in self.profiles:
            return web.Response(status=404, text="no such profile")
        if token not in self.jpegs:
            self.jpegs[token] = make_jpeg(*self.profiles[token][:2])
        return web.Response(body=self.jpegs[token], content_type="image/jpeg")

    async def state(self, request: web.Request) -> web.Response:
        """GET /_sim/state: the PTZ head, presets and counters as JSON. ``requests`` counts SOAP
        requests, ``auth_failures`` refused credentials (WS-Security, or a wrong snapshot Digest;
        the unauthenticated first request of a Digest exchange is not a failure)."""
        head = self.ptz
        if head:
            head.advance()
        keys = ("pan", "tilt", "zoom")
        return web.json_response({
            "position": dict(zip(keys, head.position)) if head else None,
            "moving": bool(head and any(head.velocity)),
            "presets": [{"token": t, "name": n, **dict(zip(keys, p))} for t, (n, p) in head.presets.items()]
            if head else [],
            "requests": self.requests, "auth_failures": self.auth_failures, "operations": self.operations})


def make_jpeg(width: int, height: int) -> bytes:
    """A real baseline JPEG: a gray diagonal gradient through FFmpeg's mjpeg encoder."""
    import av  # here, so the SOAP side starts without loading FFmpeg
    import numpy as np

    gray = (np.linspace(40, 200, width)[None, :] + np.linspace(0, 50, height)[:, None]).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(np.dstack([gray] * 3), format="rgb24").reformat(format="yuvj420p")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt, codec.time_base = width, height, "yuvj420p", Fraction(1, 25)
    return b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])


class DiscoveryResponder(asyncio.DatagramProtocol):
    """WS-Discovery (2005/04) target: answers matching multicast Probes with a unicast ProbeMatches."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.transport: asyncio.DatagramTransport | None = None
        self.instance_id = int(time.time())
        self.message_number = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            doc = etree.fromstring(data, PARSER)
        except etree.XMLSyntaxError:
            return
        probe = doc.find("env:Body/d:Probe", NS)
        message_id = doc.findtext("env:Header/wsa:MessageID", "", NS).strip()
        if probe is None or not message_id or not self.matches(probe):
            return  # only Probes are answered; Resolve, Hello, Bye and strangers are ignored
        self.message_number += 1
        dev = self.device
        xaddr = f"http://{dev.advertised_host()}:{dev.port}/onvif/device_service"
        reply = envelope(
            E("d:ProbeMatches", E("d:ProbeMatch", E("wsa:EndpointReference", E("wsa:Address", text=dev.endpoint)),
                                  E("d:Types", text="dn:NetworkVideoTransmitter tds:Device"),
                                  E("d:Scopes", text=" ".join(dev.scopes())), E("d:XAddrs", text=xaddr),
                                  E("d:MetadataVersion", text=1))),
            header=[E("wsa:MessageID", text=f"urn:uuid:{uuid.uuid4()}"), E("wsa:RelatesTo", text=message_id),
                    E("wsa:To", text=NS["wsa"] + "/role/anonymous"),
                    E("wsa:Action", text="http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches"),
                    E("d:AppSequence", InstanceId=self.instance_id, MessageNumber=self.message_number)])
        self.transport.sendto(reply, addr)

    def matches(self, probe: etree._Element) -> bool:
        """All probed Types must be ours, and every probed Scope a segment-wise prefix of one of
        ours (the default RFC 3986 rule)."""
        types = probe.find("d:Types", NS)
        for qname in (types.text or "").split() if types is not None else ():
            prefix, _, local = qname.rpartition(":")
            if (types.nsmap.get(prefix or None), local) not in DEVICE_TYPES:
                return False
        scopes = (probe.findtext("d:Scopes", "", NS) or "").split()
        ours = [s.rstrip("/").split("/") for s in self.device.scopes()]
        return all(any(mine[:len(want)] == want for mine in ours)
                   for want in (s.rstrip("/").split("/") for s in scopes))


def discovery_socket(address: str) -> socket.socket:
    """UDP 3702, joined to 239.255.255.250 on the interface that has ``address``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", 3702))
    membership = socket.inet_aton("239.255.255.250") + socket.inet_aton(address)  # struct ip_mreq
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
    sock.setblocking(False)
    return sock


async def serve(args: argparse.Namespace) -> None:
    """Serve HTTP (and discovery) until SIGTERM or SIGINT."""
    device = Device(args)
    app = web.Application(client_max_size=1 << 20)
    for path in SERVICES:
        if path != "/onvif/ptz_service" or device.ptz:
            app.router.add_post(path, device.soap)
    app.router.add_get("/onvif/snapshot.jpg", device.snapshot)
    app.router.add_get("/_sim/state", device.state)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    device.port = runner.addresses[0][1]
    transport = None
    if args.discovery_address:
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: DiscoveryResponder(device), sock=discovery_socket(args.discovery_address))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f"READY http://{device.advertised_host()}:{device.port}/onvif/device_service", flush=True)
    await stop.wait()
    if transport:
        transport.close()
    await runner.cleanup()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to serve HTTP on")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--rtsp-url", required=True, help='what GetStreamUri answers for profile "main"')
    p.add_argument("--sub-rtsp-url", help='if given, a second profile "sub" (640x360) streams from here')
    p.add_argument("--main-size", default="1280x720", help="resolution of the main profile")
    p.add_argument("--user", default="admin")
    p.add_argument("--password", default="secret")
    p.add_argument("--clock-offset-s", type=float, default=0.0, help="device clock = now + this")
    p.add_argument("--created-window-s", type=float, default=300.0,
                   help="max distance of a digest's Created from the device clock; 0 = no check")
    p.add_argument("--no-ptz", dest="ptz", action="store_false", help="a fixed camera: no PTZ service")
    p.add_argument("--discovery-address", help="answer WS-Discovery Probes on the interface with this IPv4")
    p.add_argument("--name", default="Valt Sim")
    p.add_argument("--manufacturer", default="ValtSim")
    p.add_argument("--model", default="ONVIF-PTZ-1")
    p.add_argument("--firmware", default="1.0.0")
    p.add_argument("--serial", default="VS-0001")
    asyncio.run(serve(p.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
