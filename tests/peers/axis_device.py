"""A fake Axis network camera for tests: its VAPIX HTTP API, and optionally its SSDP announcements.

Axis hardware cannot run here, so the Axis driver is tested against this. It is written from Axis's
published VAPIX documentation (developer.axis.com/vapix), one document per endpoint:

- Authentication: HTTP Digest (RFC 7616, MD5, qop=auth) on every ``/axis-cgi/`` path.
- Basic device information: ``POST /axis-cgi/basicdeviceinfo.cgi`` (JSON; error codes 1000-8000).
- Parameter management: ``GET /axis-cgi/param.cgi?action=list[&group=A,B]`` (text; ``# Error:`` lines).
- Pan/tilt/zoom API, PTZ control: ``/axis-cgi/com/ptz.cgi`` and ``/axis-cgi/com/ptzconfig.cgi``
  (204 No Content on success, ``200 text/plain Error:<message>`` on failure).
- Video streaming, JPEG snapshot: ``GET /axis-cgi/jpg/image.cgi[?resolution=WxH]``.
- Stream profiles: ``POST /axis-cgi/streamprofile.cgi`` (method ``list``).
- API Discovery service: ``POST /axis-cgi/apidiscovery.cgi`` (``getApiList``, ``getSupportedVersions``).
- UPnP Device Architecture 1.0: SSDP M-SEARCH replies and NOTIFY, ``GET /rootdesc.xml`` (no auth).
  The SERVER string, USN ``uuid:Upnp-BasicDevice-1_0-<serial>`` and ST
  ``urn:axis-com:service:BasicService:1`` are what real Axis cameras send.

Video is not served here: tests run a separate RTSP camera, whose port this reports as
``root.Network.RTSP.Port``. ``GET /_fake/state`` (no auth) shows position, presets and counters.

Usage: ``axis_device.py --port 0 --rtsp-port 8554 [--no-ptz] [--ssdp-address IP]``; prints one line
``READY http://HOST:PORT`` and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import hashlib
import hmac
import json
import math
import re
import secrets
import signal
import socket
import time
from email.utils import formatdate
from fractions import Fraction
from xml.etree import ElementTree as ET

import av
from aiohttp import web

RESOLUTIONS = ["1920x1080", "1280x720", "1024x576", "800x450", "640x360", "480x270", "320x180", "160x90"]
PROFILES = [  # (name, description, parameters): the device's stream profiles
    ("main", "Main stream: H.264 1280x720 25 fps", "videocodec=h264&resolution=1280x720&fps=25"),
    ("sub", "Sub stream: H.264 640x360 25 fps", "videocodec=h264&resolution=640x360&fps=25"),
]
LIMITS = {"pan": (-180.0, 180.0), "tilt": (-90.0, 20.0), "zoom": (1.0, 9999.0)}  # PTZ.Limit.L1
FULL_SPEED = {"pan": 60.0, "tilt": 60.0, "zoom": 5000.0}  # units per second at speed 100
NONCE_LIFETIME = 300.0
SSDP_GROUP, SSDP_PORT = "239.255.255.250", 1900
SSDP_SERVER = "Linux/4.14.173-axis8, UPnP/1.0, Portable SDK for UPnP devices/1.8.7"
DEVICE_TYPE = "urn:schemas-upnp-org:device:Basic:1"
SERVICE_TYPE = "urn:axis-com:service:BasicService:1"


def text(body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, text=body, content_type="text/plain")


class ApiError(Exception):
    """A refused JSON API call: ``ApiError(code, message)``, answered as VAPIX's error object."""


class PtzError(Exception):
    """A refused PTZ command: Axis answers ``200 OK``, ``text/plain``, ``Error:<message>``."""


def number(key: str, value: str, low: float, high: float) -> float:
    """Parse a PTZ argument, refusing values outside the range VAPIX documents for it."""
    try:
        result = float(value)
    except ValueError:
        raise PtzError(f"{key}: invalid value: {value}") from None
    if not (math.isfinite(result) and low <= result <= high):
        raise PtzError(f"{key}: invalid value: {value}")
    return result


class PtzModel:
    """The mechanics: continuous speeds integrate over time, every axis clamps at its limit.

    Absolute, relative and preset moves land at once (no travel time), and cancel any continuous
    motion, so a test can read the position right after commanding it.
    """

    def __init__(self) -> None:
        self.pos = {"pan": 0.0, "tilt": 0.0, "zoom": 1.0}
        self.vel = dict.fromkeys(self.pos, 0.0)
        self.stamp = time.monotonic()
        self.speed = 100  # ptz.cgi speed=; stored and reported, absolute moves are instant anyway
        self.presets: dict[str, dict] = {}
        self.save("Home", home=True, at=dict(self.pos))

    def _advance(self) -> None:
        now = time.monotonic()
        for axis, v in self.vel.items():
            low, high = LIMITS[axis]
            self.pos[axis] = min(high, max(low, self.pos[axis] + v * (now - self.stamp)))
        self.stamp = now

    def position(self) -> dict[str, float]:
        self._advance()
        return dict(self.pos)

    def moving(self) -> bool:
        """True while some axis has a speed and has not yet reached the limit it heads for."""
        self._advance()
        return any(v and self.pos[a] != LIMITS[a][v > 0] for a, v in self.vel.items())

    def continuous(self, **speeds: float) -> None:
        """Set speeds (-100..100) for some axes; 0 stops that axis where it is."""
        self._advance()
        for axis, s in speeds.items():
            self.vel[axis] = s / 100 * FULL_SPEED[axis]

    def goto(self, **target: float) -> None:
        self._advance()
        self.vel = dict.fromkeys(self.vel, 0.0)
        for axis, value in target.items():
            low, high = LIMITS[axis]
            self.pos[axis] = min(high, max(low, value))

    def save(self, name: str, home: bool = False, no: int | None = None, at: dict | None = None) -> None:
        """Save the current position (or ``at``) as preset ``name``; VAPIX: a name also gets a number."""
        if not 0 < len(name) <= 31 or any(c in name for c in '"<>~:'):
            raise PtzError(f"setserverpresetname: invalid value: {name}")
        old = self.presets.pop(name, None)
        if no is None:
            used = {p["number"] for p in self.presets.values()}
            no = old["number"] if old else next(n for n in range(1, 1000) if n not in used)
        if home:
            for preset in self.presets.values():
                preset["home"] = False
        self.presets[name] = {"number": no, **(at or self.position()), "home": home or bool(old and old["home"])}

    def find(self, key: str, value: str) -> str:
        """The name of the preset named ``value`` (or numbered, for the ``...no`` arguments)."""
        for name, preset in self.presets.items():
            if (str(preset["number"]) == value) if key.endswith("no") else (name == value):
                return name
        raise PtzError(f"{key}: unknown value: {value}")

    def remove(self, name: str) -> None:
        if self.presets.pop(name)["home"]:
            # VAPIX: removing the home preset makes a new default home preset at once.
            self.save("Home", home=True, at={"pan": 0.0, "tilt": 0.0, "zoom": 1.0})

    def home(self) -> dict[str, float]:
        preset = next(p for p in self.presets.values() if p["home"])
        return {axis: preset[axis] for axis in LIMITS}


def md5(value: str) -> str:
    return hashlib.md5(value.encode()).hexdigest()


class DigestAuth:
    """HTTP Digest, MD5, qop=auth, with server-issued nonces that expire and refuse a replayed nc."""

    def __init__(self, user: str, password: str, realm: str) -> None:
        self.user, self.password, self.realm = user, password, realm
        self.nonces: dict[str, tuple[float, set[str]]] = {}  # nonce -> (issued, nc values used)

    def challenge(self, stale: bool = False) -> str:
        now = time.monotonic()
        for nonce in [n for n, (t, _) in self.nonces.items() if now - t > NONCE_LIFETIME]:
            del self.nonces[nonce]
        nonce = secrets.token_hex(16)
        self.nonces[nonce] = (now, set())
        return (f'Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5, qop="auth"'
                + (", stale=TRUE" if stale else ""))

    def check(self, method: str, uri: str, header: str | None) -> str:
        """``ok``, ``missing`` (no Digest header), ``bad`` (wrong credentials), ``stale`` or ``uri``."""
        if not header or header[:7].lower() != "digest ":
            return "missing"
        f = {k.lower(): re.sub(r"\\(.)", r"\1", quoted) or bare
             for k, quoted, bare in re.findall(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))', header[7:])}
        if any(k not in f for k in ("username", "realm", "nonce", "uri", "response", "nc", "cnonce")) \
                or f.get("qop") != "auth" or f.get("algorithm", "MD5").upper() != "MD5":
            return "bad"
        if f["uri"] != uri:
            return "uri"
        ha1, ha2 = md5(f"{self.user}:{self.realm}:{self.password}"), md5(f"{method}:{f['uri']}")
        expected = md5(f"{ha1}:{f['nonce']}:{f['nc']}:{f['cnonce']}:auth:{ha2}")
        if f["username"] != self.user or f["realm"] != self.realm \
                or not hmac.compare_digest(expected.encode(), f["response"].lower().encode()):
            return "bad"
        issued, used = self.nonces.get(f["nonce"], (None, set()))
        if issued is None or time.monotonic() - issued > NONCE_LIFETIME or f["nc"] in used:
            return "stale"  # right password, but not a nonce we hold: the client must retry
        used.add(f["nc"])
        return "ok"


def encode_jpeg(width: int, height: int) -> bytes:
    """A real JPEG of the given size: a diagonal gray ramp, encoded by FFmpeg's mjpeg encoder."""
    frame = av.VideoFrame(width, height, "gray")
    plane = frame.planes[0]
    row = bytes(x * 160 // max(width - 1, 1) for x in range(width)) + bytes(plane.line_size - width)
    shifts = [bytes(min(255, i + k) for i in range(256)) for k in range(96)]
    plane.update(b"".join(row.translate(shifts[y * 96 // height]) for y in range(height)))
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = width, height, "yuvj420p", Fraction(1, 25)
    packets = ctx.encode(frame.reformat(format="yuvj420p")) + ctx.encode(None)
    return b"".join(bytes(p) for p in packets)


class FakeAxis:
    """The device: identity, PTZ model, authentication, counters, and the HTTP handlers."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.model, self.serial = args.model, args.serial
        kind = "PTZ Network Camera" if args.ptz else "Network Camera"
        self.properties = {
            "Architecture": "armv7hf", "Brand": "AXIS", "BuildDate": "Nov 21 2022 10:17",
            "HardwareID": "7A0", "ProdFullName": f"AXIS {args.model} {kind}", "ProdNbr": args.model,
            "ProdShortName": f"AXIS {args.model}", "ProdType": kind, "ProdVariant": "",
            "SerialNumber": args.serial, "Soc": "Axis Artpec-7", "SocSerialNumber": "00000000-00000000-0000AB12",
            "Version": args.firmware, "WebURL": "http://www.axis.com",
        }
        self.friendly_name = f"AXIS {args.model} - {args.serial}"
        self.udn = f"uuid:Upnp-BasicDevice-1_0-{args.serial}"
        self.ptz = PtzModel() if args.ptz else None
        self.auth = DigestAuth(args.user, args.password, f"AXIS_{args.serial}")
        self.auth_failures = self.requests = self.ssdp_replies = 0
        self.jpegs: dict[str, bytes] = {}
        self.base_url = ""

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self.authenticate])
        r = app.router
        r.add_route("*", "/axis-cgi/basicdeviceinfo.cgi", self.basicdeviceinfo)
        r.add_route("*", "/axis-cgi/apidiscovery.cgi", self.apidiscovery)
        r.add_post("/axis-cgi/streamprofile.cgi", self.streamprofile)
        r.add_route("*", "/axis-cgi/param.cgi", self.param)
        r.add_get("/axis-cgi/jpg/image.cgi", self.image)
        if self.ptz:  # a camera without PTZ has no such CGIs: 404
            r.add_route("*", "/axis-cgi/com/ptz.cgi", self.ptz_cgi)
            r.add_route("*", "/axis-cgi/com/ptzconfig.cgi", self.ptzconfig_cgi)
        r.add_get("/rootdesc.xml", self.rootdesc)
        r.add_get("/_fake/state", self.state)
        r.add_get("/", self.index)
        return app

    @web.middleware
    async def authenticate(self, request: web.Request, handler):
        if not request.path.startswith("/axis-cgi/"):
            return await handler(request)
        verdict = self.auth.check(request.method, request.raw_path, request.headers.get("Authorization"))
        if verdict == "uri":
            return text("400 Bad Request: digest uri does not match the request\n", 400)
        if verdict != "ok":
            self.auth_failures += verdict == "bad"
            return web.Response(status=401, text="401 Unauthorized\n", content_type="text/plain",
                                headers={"WWW-Authenticate": self.auth.challenge(stale=verdict == "stale")})
        self.requests += 1
        return await handler(request)

    @staticmethod
    async def _args(request: web.Request) -> dict[str, str]:
        """GET query and POST form arguments alike (the CGIs accept either)."""
        args = dict(request.query)
        if request.method == "POST":
            args.update({k: str(v) for k, v in (await request.post()).items()})
        return args

    # --- JSON APIs -----------------------------------------------------------------------------

    async def _json_api(self, request: web.Request, call, *, invalid_json: int) -> web.Response:
        """A VAPIX JSON call: always ``200``; ``apiVersion``, ``context`` and ``method`` echoed,
        then ``data`` (what ``call(req)`` returns) or ``error: {code, message}``."""
        req = {}
        try:
            if request.method != "POST":
                raise ApiError(2002, "Only POST is supported")
            try:
                req = json.loads(await request.text())
            except ValueError:
                pass
            if not isinstance(req, dict) or not req:
                req = {}
                raise ApiError(invalid_json, "Invalid JSON format")
            body = {"data": call(req)}
        except ApiError as e:
            body = {"error": {"code": e.args[0], "message": e.args[1]}}
        version = req.get("apiVersion")
        head = {"apiVersion": version if isinstance(version, str) else "1.0"}
        head.update({k: req[k] for k in ("context", "method") if isinstance(req.get(k), str)})
        return web.json_response({**head, **body})

    @staticmethod
    def _version(req: dict, missing: int, unsupported: int) -> None:
        """Each API takes major version 1; the error codes differ per API document."""
        version = req.get("apiVersion")
        if not isinstance(version, str):
            raise ApiError(missing, "Missing parameter: apiVersion")
        if version.split(".")[0] != "1":
            raise ApiError(unsupported, f"Unsupported API version: {version}")

    async def basicdeviceinfo(self, request: web.Request) -> web.Response:
        return await self._json_api(request, self._basicdeviceinfo, invalid_json=4000)

    def _basicdeviceinfo(self, req: dict) -> dict:
        method = req.get("method")
        if method == "getSupportedVersions":
            return {"apiVersions": ["1.0", "1.1", "1.2", "1.3"]}
        self._version(req, missing=4002, unsupported=2003)
        if method == "getAllProperties":
            return {"propertyList": self.properties}
        if method == "getAllUnrestrictedProperties":
            hidden = ("Architecture", "Soc", "SocSerialNumber")
            return {"propertyList": {k: v for k, v in self.properties.items() if k not in hidden}}
        if method != "getProperties":
            raise ApiError(2004, f"Method not supported: {method}")
        names = req["params"].get("propertyList") if isinstance(req.get("params"), dict) else None
        if not isinstance(names, list):
            raise ApiError(4002, "Missing parameter: propertyList")
        for name in names:
            if name not in self.properties:
                raise ApiError(1000, f"Property not supported: {name}")
        return {"propertyList": {name: self.properties[name] for name in names}}

    async def apidiscovery(self, request: web.Request) -> web.Response:
        return await self._json_api(request, self._apidiscovery, invalid_json=4000)

    def _apidiscovery(self, req: dict) -> dict:
        if req.get("method") == "getSupportedVersions":
            return {"apiVersions": ["1.0"]}
        self._version(req, missing=4002, unsupported=2003)
        if req.get("method") != "getApiList":
            raise ApiError(2004, f"Method not supported: {req.get('method')}")
        apis = [("api-discovery", "1.0", "API Discovery Service"),
                ("basic-device-info", "1.1", "Basic Device Information"),
                ("param-cgi", "1.0", "Parameter Management"), ("stream-profiles", "1.0", "Stream Profiles")]
        if self.ptz:
            apis.append(("ptz-control", "1.0", "PTZ Control"))
        params = req["params"] if isinstance(req.get("params"), dict) else {}
        return {"apiList": [
            {"id": i, "version": v, "status": "released", "name": n, "docLink": "https://developer.axis.com/vapix/"}
            for i, v, n in apis if fnmatch.fnmatchcase(i, str(params.get("id", "*")))
            and fnmatch.fnmatchcase(v, str(params.get("version", "*")))]}

    async def streamprofile(self, request: web.Request) -> web.Response:
        return await self._json_api(request, self._streamprofile, invalid_json=2001)

    def _streamprofile(self, req: dict) -> dict:
        if req.get("method") == "getSupportedVersions":
            return {"apiVersions": ["1.0"]}
        self._version(req, missing=2001, unsupported=2000)
        if req.get("method") != "list":  # create/update/remove: this fake's profiles are fixed
            raise ApiError(2005, f"Unsupported method: {req.get('method')}")
        profiles = [{"name": n, "description": d, "parameters": p} for n, d, p in PROFILES]
        wanted = (req["params"] if isinstance(req.get("params"), dict) else {}).get("streamProfileName") or []
        names = [w.get("name") if isinstance(w, dict) else w for w in wanted]
        for name in names:
            if name not in [p["name"] for p in profiles]:
                raise ApiError(2006, f"Profile does not exist: {name}")
        return {"streamProfile": [p for p in profiles if not names or p["name"] in names], "maxProfiles": 26}

    # --- param.cgi -----------------------------------------------------------------------------

    def parameters(self) -> list[tuple[str, str]]:
        """Every parameter, without the ``root.`` prefix, in listing order."""
        p, yes = self.properties, ("yes" if self.ptz else "no")
        params = [("Brand." + k, p[k]) for k in ("Brand", "ProdFullName", "ProdNbr", "ProdShortName",
                                                   "ProdType", "ProdVariant", "WebURL")]
        params += [("Network.Bonjour.Enabled", "yes"), ("Network.Bonjour.FriendlyName", self.friendly_name),
                   ("Network.RTSP.Enabled", "yes"), ("Network.RTSP.Port", str(self.args.rtsp_port)),
                   ("Network.UPnP.Enabled", "yes"), ("Network.UPnP.FriendlyName", self.friendly_name)]
        params += [("Properties.API.HTTP.Version", "3"), ("Properties.API.RTSP.Version", "2.01"),
                   ("Properties.ApiDiscovery.ApiDiscovery", "yes"),
                   ("Properties.Firmware.BuildDate", p["BuildDate"]), ("Properties.Firmware.Version", p["Version"]),
                   ("Properties.Image.Format", "jpeg,mjpeg,h264,h265"),
                   ("Properties.Image.Resolution", ",".join(RESOLUTIONS)), ("Properties.Image.Rotation", "0,180"),
                   ("Properties.PTZ.PTZ", yes), ("Properties.StreamProfile.MaxGroups", "26"),
                   ("Properties.StreamProfile.StreamProfile", "yes"),
                   ("Properties.System.Architecture", p["Architecture"]),
                   ("Properties.System.HardwareID", p["HardwareID"]),
                   ("Properties.System.SerialNumber", self.serial), ("Properties.System.Soc", p["Soc"])]
        if self.ptz:
            params += [("Properties.API.PTZ.Presets.Version", "2.00"), ("Properties.PTZ.DigitalPTZ", "no"),
                       ("Properties.PTZ.DriverManagement", "no"),
                       ("PTZ.CameraDefault", "1"), ("PTZ.NbrOfCameras", "1"), ("PTZ.NbrOfSerPorts", "0"),
                       ("PTZ.ImageSource.I0.PTZEnabled", "true")]
            for axis, (low, high) in LIMITS.items():
                params += [(f"PTZ.Limit.L1.Min{axis.title()}", f"{low:g}"),
                           (f"PTZ.Limit.L1.Max{axis.title()}", f"{high:g}")]
            params += [(f"PTZ.Support.S1.{kind}{axis}", "true") for axis in ("Pan", "Tilt", "Zoom")
                       for kind in ("Absolute", "Relative", "Continuous")]
            params += [("PTZ.Support.S1.ServerPreset", "true"), ("PTZ.Support.S1.SpeedCtl", "true"),
                       ("PTZ.Various.V1.Locked", "false"), ("PTZ.Various.V1.PanEnabled", "true"),
                       ("PTZ.Various.V1.TiltEnabled", "true"), ("PTZ.Various.V1.ZoomEnabled", "true")]
        params.append(("StreamProfile.MaxGroups", "26"))
        for i, (name, description, parameters) in enumerate(PROFILES):
            params += [(f"StreamProfile.S{i}.Name", name), (f"StreamProfile.S{i}.Description", description),
                       (f"StreamProfile.S{i}.Parameters", parameters)]
        return params

    async def param(self, request: web.Request) -> web.Response:
        args = await self._args(request)
        action = args.get("action", "")
        if action != "list":  # update/add/remove/listdefinitions: this fake's parameters are read-only
            return text(f"# Request failed: action '{action}' is not supported\n")
        params = self.parameters()
        groups = args.get("group")
        if not groups:
            return text("".join(f"root.{k}={v}\n" for k, v in params))
        lines = []
        for group in groups.split(","):
            group = group.strip().removeprefix("root.")
            # A group names a parameter or a subtree; * stands for one name level (ImageSource.*.Name).
            pattern = re.compile(re.escape(group).replace(r"\*", r"[^.]+") + r"(\..+)?")
            found = [f"root.{k}={v}\n" for k, v in params if pattern.fullmatch(k)]
            lines += found or [f"# Error: Error -1 getting param in group '{group}'\n"]
        return text("".join(lines))

    # --- PTZ -----------------------------------------------------------------------------------

    @staticmethod
    def _camera(args: dict[str, str]) -> None:
        camera = args.pop("camera", "1")
        if camera != "1":
            raise PtzError(f"camera: invalid value: {camera}")

    async def ptz_cgi(self, request: web.Request) -> web.Response:
        try:
            return self._ptz(await self._args(request))
        except PtzError as e:
            return text(f"Error:{e}\n")

    def _ptz(self, args: dict[str, str]) -> web.Response:
        ptz = self.ptz
        assert ptz is not None
        self._camera(args)
        for harmless in ("imagerotation", "timestamp", "proportionalspeed"):
            args.pop(harmless, None)
        if "query" in args:
            return self._query(args["query"])
        here, target, speeds, stop, speed = ptz.position(), {}, {}, False, ptz.speed
        # Check every argument before acting on any, so a refused request moves nothing.
        for key, value in args.items():
            if key in ("pan", "tilt"):
                target[key] = number(key, value, -180, 180)
            elif key == "zoom":
                target[key] = float(int(number(key, value, 1, 9999)))  # VAPIX: float input handled as int
            elif key in ("rpan", "rtilt", "rzoom"):
                delta = number(key, value, *((-9999, 9999) if key == "rzoom" else (-360, 360)))
                target[key[1:]] = target.get(key[1:], here[key[1:]]) + delta
            elif key == "continuouspantiltmove":
                parts = value.split(",")
                if len(parts) != 2:
                    raise PtzError(f"{key}: invalid value: {value}")
                speeds["pan"], speeds["tilt"] = (round(number(key, p, -100, 100)) for p in parts)
            elif key == "continuouszoommove":
                speeds["zoom"] = round(number(key, value, -100, 100))
            elif key == "move" and value == "stop":
                stop = True
            elif key == "move" and value == "home":
                target.update(ptz.home())
            elif key in ("gotoserverpresetname", "gotoserverpresetno"):
                preset = ptz.presets[ptz.find(key, value)]
                target.update({axis: preset[axis] for axis in LIMITS})
            elif key == "speed":
                speed = round(number(key, value, 1, 100))
            elif key == "move":  # up/down/left/right/...: not modelled
                raise PtzError(f"move: unknown value: {value}")
            else:
                raise PtzError(f"{key}: unknown argument")
        ptz.speed = speed
        if target:
            ptz.goto(**target)
        if stop:  # VAPIX: move=stop stops the pan/tilt movement (zoom: continuouszoommove=0)
            ptz.continuous(pan=0, tilt=0)
        if speeds:
            ptz.continuous(**speeds)
        return web.Response(status=204)

    def _query(self, what: str) -> web.Response:
        ptz = self.ptz
        assert ptz is not None
        if what == "position":
            p = ptz.position()
            return text(f"pan={p['pan']:.4f}\ntilt={p['tilt']:.4f}\nzoom={round(p['zoom'])}\n"
                        "iris=5000\nfocus=5000\nbrightness=5000\nautofocus=on\nautoiris=on\n")
        if what == "limits":
            lines = [f"{m}{a.title()}={LIMITS[a][i]:g}" for a in LIMITS for i, m in enumerate(("Min", "Max"))]
            return text("\n".join(lines) + "\n")
        if what in ("presetposall", "presetposcam"):
            presets = sorted(ptz.presets.items(), key=lambda item: item[1]["number"])
            return text("Preset Positions for camera 1\n"
                        + "".join(f"presetposno{p['number']}={name}\n" for name, p in presets))
        if what == "speed":
            return text(f"speed={ptz.speed}\n")
        raise PtzError(f"query: unknown value: {what}")

    async def ptzconfig_cgi(self, request: web.Request) -> web.Response:
        ptz = self.ptz
        assert ptz is not None
        try:
            args = await self._args(request)
            self._camera(args)
            home = args.pop("home", "no") == "yes"
            for key, value in args.items():
                if key == "setserverpresetname":
                    ptz.save(value, home=home)
                elif key == "setserverpresetno":
                    n = round(number(key, value, 1, 999))
                    names = [name for name, p in ptz.presets.items() if p["number"] == n]
                    ptz.save(names[0] if names else f"p{n}", home=home, no=n)
                elif key in ("removeserverpresetname", "removeserverpresetno"):
                    ptz.remove(ptz.find(key, value))
                else:
                    raise PtzError(f"{key}: unknown argument")
        except PtzError as e:
            return text(f"Error:{e}\n")
        return web.Response(status=204)

    # --- snapshot, UPnP description, introspection -------------------------------------------

    async def image(self, request: web.Request) -> web.Response:
        resolution = request.query.get("resolution", RESOLUTIONS[0])
        if request.query.get("camera", "1") != "1" or resolution not in RESOLUTIONS:
            return text(f"Error: unsupported camera or resolution: {resolution}\n", 400)
        if resolution not in self.jpegs:
            width, height = map(int, resolution.split("x"))
            self.jpegs[resolution] = await asyncio.to_thread(encode_jpeg, width, height)
        return web.Response(body=self.jpegs[resolution], content_type="image/jpeg")

    async def rootdesc(self, request: web.Request) -> web.Response:
        root = ET.Element("root", xmlns="urn:schemas-upnp-org:device-1-0")
        spec = ET.SubElement(root, "specVersion")
        ET.SubElement(spec, "major").text, ET.SubElement(spec, "minor").text = "1", "0"
        ET.SubElement(root, "URLBase").text = self.base_url + "/"
        device = ET.SubElement(root, "device")
        for tag, value in [("deviceType", DEVICE_TYPE), ("friendlyName", self.friendly_name),
                           ("manufacturer", "AXIS"), ("manufacturerURL", "http://www.axis.com/"),
                           ("modelDescription", self.properties["ProdFullName"]),
                           ("modelName", f"AXIS {self.model}"), ("modelNumber", self.model),
                           ("modelURL", "http://www.axis.com/"), ("serialNumber", self.serial),
                           ("UDN", self.udn)]:
            ET.SubElement(device, tag).text = value
        service = ET.SubElement(ET.SubElement(device, "serviceList"), "service")
        for tag, value in [("serviceType", SERVICE_TYPE), ("serviceId", "urn:axis-com:serviceId:BasicServiceId"),
                           ("controlURL", "/upnp/control/BasicServiceId"),
                           ("eventSubURL", "/upnp/event/BasicServiceId"), ("SCPDURL", "/scpd_basic.xml")]:
            ET.SubElement(service, tag).text = value
        ET.SubElement(device, "presentationURL").text = self.base_url + "/"
        body = b'<?xml version="1.0"?>\n' + ET.tostring(root)
        return web.Response(body=body, content_type="text/xml", charset="utf-8")

    async def index(self, request: web.Request) -> web.Response:
        """The presentationURL: a real camera shows its web interface here."""
        return web.Response(text=f"<html><body>{self.friendly_name}</body></html>", content_type="text/html")

    async def state(self, request: web.Request) -> web.Response:
        ptz = self.ptz
        return web.json_response({
            "position": ptz.position() if ptz else None, "moving": bool(ptz and ptz.moving()),
            "presets": dict(ptz.presets) if ptz else {}, "auth_failures": self.auth_failures,
            "requests": self.requests, "ssdp_replies": self.ssdp_replies})


class SsdpResponder(asyncio.DatagramProtocol):
    """Answers SSDP M-SEARCH by unicast, and announces the device (NOTIFY) on start and stop."""

    def __init__(self, device: FakeAxis) -> None:
        self.device = device
        self.targets = ["upnp:rootdevice", device.udn, DEVICE_TYPE, SERVICE_TYPE]
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def usn(self, target: str) -> str:
        return self.device.udn if target == self.device.udn else f"{self.device.udn}::{target}"

    def datagram_received(self, data: bytes, addr) -> None:
        lines = data.decode("latin-1").splitlines()
        if not lines or lines[0].strip().upper() != "M-SEARCH * HTTP/1.1":
            return
        headers = {k.strip().upper(): v.strip() for k, sep, v in (x.partition(":") for x in lines[1:]) if sep}
        if headers.get("MAN", "").strip('"') != "ssdp:discover":
            return
        st = headers.get("ST", "")
        # UPnP: ssdp:all gets one reply per target; a named target, if ours, gets one; others none.
        for target in self.targets if st == "ssdp:all" else [st] if st in self.targets else []:
            reply = ("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\n"
                     f"DATE: {formatdate(usegmt=True)}\r\nEXT:\r\n"
                     f"LOCATION: {self.device.base_url}/rootdesc.xml\r\nSERVER: {SSDP_SERVER}\r\n"
                     f"ST: {target}\r\nUSN: {self.usn(target)}\r\n\r\n")
            self.transport.sendto(reply.encode(), addr)
            self.device.ssdp_replies += 1

    def notify(self, nts: str) -> None:
        for target in self.targets:
            extra = (f"CACHE-CONTROL: max-age=1800\r\nLOCATION: {self.device.base_url}/rootdesc.xml\r\n"
                     f"SERVER: {SSDP_SERVER}\r\n") if nts == "ssdp:alive" else ""
            message = (f"NOTIFY * HTTP/1.1\r\nHOST: {SSDP_GROUP}:{SSDP_PORT}\r\n{extra}"
                       f"NT: {target}\r\nNTS: {nts}\r\nUSN: {self.usn(target)}\r\n\r\n")
            self.transport.sendto(message.encode(), (SSDP_GROUP, SSDP_PORT))


def ssdp_socket(address: str) -> socket.socket:
    """Port 1900, in the SSDP group on the interface that has ``address`` only."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Only the groups this socket joined, not every group some other socket on the host joined.
    sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MULTICAST_ALL", 49), 0)
    sock.bind(("", SSDP_PORT))
    group, iface = socket.inet_aton(SSDP_GROUP), socket.inet_aton(address)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group + iface)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, iface)
    sock.setblocking(False)
    return sock


async def serve(args: argparse.Namespace) -> None:
    device = FakeAxis(args)
    runner = web.AppRunner(device.make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    # Listening on every address, the device names itself by the one it announces SSDP on.
    shown = args.ssdp_address if args.host in ("", "0.0.0.0") and args.ssdp_address else args.host
    device.base_url = f"http://{shown}:{runner.addresses[0][1]}"
    loop = asyncio.get_running_loop()
    responder = None
    if args.ssdp_address:
        _, responder = await loop.create_datagram_endpoint(lambda: SsdpResponder(device),
                                                           sock=ssdp_socket(args.ssdp_address))
        responder.notify("ssdp:alive")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {device.base_url}", flush=True)
    await stop.wait()
    if responder:
        responder.notify("ssdp:byebye")
        responder.transport.close()
    await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--rtsp-port", type=int, default=554, help="reported as root.Network.RTSP.Port")
    p.add_argument("--user", default="root")
    p.add_argument("--password", default="pass")
    p.add_argument("--no-ptz", dest="ptz", action="store_false", help="a fixed camera: no ptz.cgi")
    p.add_argument("--model", default="Q6075-E", help="ProdNbr")
    p.add_argument("--serial", default="ACCC8E000001")
    p.add_argument("--firmware", default="10.12.220")
    p.add_argument("--ssdp-address", help="also answer SSDP on the interface with this IPv4 address")
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
