"""The ONVIF device simulator (tests/peers/onvif_device.py) against the real client library.

Everything here talks to the simulator through onvif-zeep-async, unchanged, the way Valt's
ONVIF support will: if these pass, the simulator is a fair stand-in for a camera. No RTSP
server is needed: the simulator only hands out the URL it was given.
"""

from __future__ import annotations

import asyncio
import io
import socket
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import av
import httpx
import onvif
import pytest
import zeep.exceptions
from lxml import etree
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFError

from tests.peers.netns import NetNamespace
from tests.peers.onvif import OnvifDevice

MAIN_URL = "rtsp://127.0.0.1:8554/cam"
SUB_URL = "rtsp://127.0.0.1:8554/sub"
TER = "http://www.onvif.org/ver10/error"
PTZ_NS = "http://www.onvif.org/ver20/ptz/wsdl"
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"


@pytest.fixture
def device():
    with OnvifDevice(MAIN_URL, sub_rtsp_url=SUB_URL) as dev:
        yield dev


async def connect(dev: OnvifDevice, password: str = "secret", host: str | None = None,
                  **kwargs) -> ONVIFCamera:
    cam = ONVIFCamera(host or dev.host, dev.port, "admin", password, **kwargs)
    await cam.update_xaddrs()
    return cam


def subcodes(fault: zeep.exceptions.Fault) -> set[str]:
    return {q.localname for q in fault.subcodes if q.namespace == TER}


async def test_device_information_profiles_stream_uris_and_snapshot(device: OnvifDevice) -> None:
    cam = await connect(device)
    try:
        # GetServices answered with XAddrs on the address the client used.
        base = f"http://{device.host}:{device.port}"
        assert cam.xaddrs[MEDIA_NS] == f"{base}/onvif/media_service"
        assert cam.xaddrs[PTZ_NS] == f"{base}/onvif/ptz_service"

        devmgmt = await cam.create_devicemgmt_service()
        info = await devmgmt.GetDeviceInformation()
        assert (info.Manufacturer, info.Model, info.FirmwareVersion, info.SerialNumber) == (
            "ValtSim", "ONVIF-PTZ-1", "1.0.0", "VS-0001")
        assert info.HardwareId

        media = await cam.create_media_service()
        profiles = await media.GetProfiles()
        sizes = {p.token: (p.VideoEncoderConfiguration.Resolution.Width,
                           p.VideoEncoderConfiguration.Resolution.Height) for p in profiles}
        assert sizes == {"main": (1280, 720), "sub": (640, 360)}
        main = profiles[0]
        assert main.VideoEncoderConfiguration.Encoding == "H264"
        assert main.VideoEncoderConfiguration.RateControl.FrameRateLimit > 0
        assert main.PTZConfiguration.token == "ptz0"
        assert main.PTZConfiguration.DefaultPTZTimeout.total_seconds() > 0  # parsed, not raw XML

        for token, url in (("main", MAIN_URL), ("sub", SUB_URL)):
            setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
            uri = await media.GetStreamUri({"ProfileToken": token, "StreamSetup": setup})
            assert uri.Uri == url
        with pytest.raises(zeep.exceptions.Fault) as err:
            await media.GetProfile({"ProfileToken": "nope"})
        assert "NoProfile" in subcodes(err.value)

        snapshot_uri = (await media.GetSnapshotUri({"ProfileToken": "main"})).Uri
        assert snapshot_uri == f"{base}/onvif/snapshot.jpg?profile=main"
        async with httpx.AsyncClient(trust_env=False) as http:
            assert (await http.get(snapshot_uri)).status_code == 401
            assert (await http.get(snapshot_uri, auth=httpx.DigestAuth("admin", "nope"))).status_code == 401
            resp = await http.get(snapshot_uri, auth=httpx.DigestAuth("admin", "secret"))
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
        assert resp.content.startswith(b"\xff\xd8")
        with av.open(io.BytesIO(resp.content)) as container:
            frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (1280, 720)
        # The library's own snapshot fetch (aiohttp's digest middleware) gets the same bytes.
        assert await cam.get_snapshot("main") == resp.content
    finally:
        await cam.close()


async def test_password_text_is_accepted_too(device: OnvifDevice) -> None:
    cam = await connect(device, encrypt=False)
    try:
        info = await (await cam.create_devicemgmt_service()).GetDeviceInformation()
        assert info.Model == "ONVIF-PTZ-1"
    finally:
        await cam.close()


async def test_wrong_password_is_a_not_authorized_fault(device: OnvifDevice) -> None:
    # GetServices needs no authentication on real devices, so discovery of the services works...
    cam = await connect(device, password="wrong")
    try:
        devmgmt = await cam.create_devicemgmt_service()
        # ...but everything else is refused, with the ONVIF subcode.
        with pytest.raises(zeep.exceptions.Fault) as err:
            await devmgmt.GetDeviceInformation()
        assert "NotAuthorized" in subcodes(err.value)
        media = await cam.create_media_service()
        with pytest.raises(zeep.exceptions.Fault):
            await media.GetProfiles()
    finally:
        await cam.close()
    assert device.state()["auth_failures"] == 2


async def test_unknown_operation_is_action_not_supported(device: OnvifDevice) -> None:
    cam = await connect(device)
    try:
        ptz = await cam.create_ptz_service()
        with pytest.raises(zeep.exceptions.Fault) as err:
            await ptz.GetPresetTours({"ProfileToken": "main"})  # in the WSDL, not simulated
        assert "ActionNotSupported" in subcodes(err.value)
    finally:
        await cam.close()


XS = "http://www.w3.org/2001/XMLSchema"
WSDL_DIR = Path(onvif.__file__).parent / "wsdl"


@pytest.fixture(scope="module")
def onvif_schema(tmp_path_factory: pytest.TempPathFactory) -> etree.XMLSchema:
    """The device, media and PTZ message schemas, from the WSDLs the client library ships.

    The schemas live inline in the WSDLs: each becomes a file of its own (keeping the WSDL's
    namespace declarations, which its type references use), imported by one top schema.
    """
    out = tmp_path_factory.mktemp("onvif-xsd")
    imports = []
    for name in ("devicemgmt", "media", "ptz"):
        wsdl = etree.parse(str(WSDL_DIR / f"{name}.wsdl"))
        for i, schema in enumerate(wsdl.iter(f"{{{XS}}}schema")):
            for imp in schema.iter(f"{{{XS}}}import"):
                if imp.get("schemaLocation"):
                    imp.set("schemaLocation", (WSDL_DIR / imp.get("schemaLocation")).as_uri())
            standalone = etree.Element(schema.tag, dict(schema.attrib),
                                       nsmap={**wsdl.getroot().nsmap, **schema.nsmap})
            standalone.extend(schema)
            etree.ElementTree(standalone).write(str(out / f"{name}-{i}.xsd"))
            imports.append(f'<xs:import namespace="{schema.get("targetNamespace")}" '
                           f'schemaLocation="{name}-{i}.xsd"/>')
    (out / "all.xsd").write_text(f'<xs:schema xmlns:xs="{XS}">{"".join(imports)}</xs:schema>')
    return etree.XMLSchema(etree.parse(str(out / "all.xsd")))


async def test_replies_are_valid_against_the_onvif_schemas(device: OnvifDevice,
                                                           onvif_schema: etree.XMLSchema) -> None:
    """Hand-written SOAP (PasswordText, other prefixes than zeep's): every reply body validates."""
    prefixes = {"tds": "http://www.onvif.org/ver10/device/wsdl", "trt": MEDIA_NS, "tptz": PTZ_NS}
    main = "<{p}:ProfileToken>main</{p}:ProfileToken>"
    calls = [
        ("device", "tds", op, "") for op in ("GetSystemDateAndTime", "GetCapabilities", "GetDeviceInformation",
                                             "GetScopes", "GetServiceCapabilities")
    ] + [
        ("device", "tds", "GetServices", "<tds:IncludeCapability>true</tds:IncludeCapability>"),
        ("media", "trt", "GetProfiles", ""), ("media", "trt", "GetVideoSources", ""),
        ("media", "trt", "GetProfile", main), ("media", "trt", "GetSnapshotUri", main),
        ("media", "trt", "GetStreamUri", "<trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport>"
                                         "<tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>" + main),
        ("ptz", "tptz", "GetNodes", ""), ("ptz", "tptz", "GetConfigurations", ""),
        ("ptz", "tptz", "GetConfigurationOptions", "<tptz:ConfigurationToken>ptz0</tptz:ConfigurationToken>"),
        ("ptz", "tptz", "ContinuousMove", main + '<tptz:Velocity><tt:PanTilt x="0.5" y="0.5"/></tptz:Velocity>'),
        ("ptz", "tptz", "SetPreset", main + "<tptz:PresetName>a</tptz:PresetName>"),
        ("ptz", "tptz", "GetPresets", main), ("ptz", "tptz", "GetStatus", main), ("ptz", "tptz", "Stop", main),
    ]
    security = ('<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-'
                'wssecurity-secext-1.0.xsd"><wsse:UsernameToken><wsse:Username>admin</wsse:Username>'
                "<wsse:Password>secret</wsse:Password></wsse:UsernameToken></wsse:Security>")
    async with httpx.AsyncClient(trust_env=False) as http:
        for service, p, op, args in calls:
            body = (f'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns:{p}="{prefixes[p]}" '
                    f'xmlns:tt="http://www.onvif.org/ver10/schema"><e:Header>{security}</e:Header>'
                    f"<e:Body><{p}:{op}>{args.format(p=p)}</{p}:{op}></e:Body></e:Envelope>")
            resp = await http.post(f"http://{device.host}:{device.port}/onvif/{service}_service", content=body,
                                   headers={"Content-Type": "application/soap+xml; charset=utf-8"})
            assert resp.status_code == 200, (op, resp.text)
            assert resp.headers["content-type"].startswith("application/soap+xml")
            reply = etree.fromstring(resp.content).find("{http://www.w3.org/2003/05/soap-envelope}Body")[0]
            assert reply.tag == f"{{{prefixes[p]}}}{op}Response"
            assert onvif_schema.validate(etree.ElementTree(reply)), (op, onvif_schema.error_log)


async def test_ptz_moves_presets_and_status(device: OnvifDevice) -> None:
    cam = await connect(device)
    try:
        ptz = await cam.create_ptz_service()
        nodes = await ptz.GetNodes()
        assert nodes[0].token == "node0" and nodes[0].MaximumNumberOfPresets > 0
        config = await ptz.GetConfiguration({"PTZConfigurationToken": "ptz0"})
        assert config.NodeToken == "node0"
        options = await ptz.GetConfigurationOptions({"ConfigurationToken": "ptz0"})
        assert options.Spaces.ContinuousPanTiltVelocitySpace[0].XRange.Max == 1

        async def status():
            s = await ptz.GetStatus({"ProfileToken": "main"})
            return (s.Position.PanTilt.x, s.Position.PanTilt.y, s.Position.Zoom.x), s

        await ptz.ContinuousMove({"ProfileToken": "main", "Velocity": {"PanTilt": {"x": 1, "y": 0}}})
        await asyncio.sleep(0.2)
        _, moving = await status()
        assert moving.MoveStatus.PanTilt == "MOVING" and device.state()["moving"]
        await asyncio.sleep(0.2)
        await ptz.Stop({"ProfileToken": "main", "PanTilt": True, "Zoom": True})
        (pan, tilt, zoom), s = await status()
        assert 0.1 < pan < 0.5 and tilt == 0 and zoom == 0  # ~0.4 s at 0.5 units/s
        assert s.MoveStatus.PanTilt == "IDLE" and s.MoveStatus.Zoom == "IDLE"
        assert abs((s.UtcTime - datetime.now(timezone.utc)).total_seconds()) < 5
        # Stopped means stopped.
        await asyncio.sleep(0.2)
        assert (await status())[0][0] == pan

        await ptz.AbsoluteMove({"ProfileToken": "main",
                                "Position": {"PanTilt": {"x": 0.5, "y": -0.25}, "Zoom": {"x": 0.3}}})
        assert (await status())[0] == pytest.approx((0.5, -0.25, 0.3))
        await ptz.RelativeMove({"ProfileToken": "main",
                                "Translation": {"PanTilt": {"x": 0.1, "y": 0.1}, "Zoom": {"x": 0.2}}})
        assert (await status())[0] == pytest.approx((0.6, -0.15, 0.5))
        await ptz.RelativeMove({"ProfileToken": "main", "Translation": {"PanTilt": {"x": 1, "y": 0}}})
        assert (await status())[0] == pytest.approx((1.0, -0.15, 0.5))  # clamped at the end stop

        await ptz.AbsoluteMove({"ProfileToken": "main",
                                "Position": {"PanTilt": {"x": -0.4, "y": 0.2}, "Zoom": {"x": 0.7}}})
        token = await ptz.SetPreset({"ProfileToken": "main", "PresetName": "door"})
        assert token
        await ptz.AbsoluteMove({"ProfileToken": "main",
                                "Position": {"PanTilt": {"x": 0.9, "y": 0.9}, "Zoom": {"x": 0.0}}})
        await ptz.GotoPreset({"ProfileToken": "main", "PresetToken": token})
        assert (await status())[0] == pytest.approx((-0.4, 0.2, 0.7))
        presets = await ptz.GetPresets({"ProfileToken": "main"})
        assert [(p.token, p.Name) for p in presets] == [(token, "door")]
        assert presets[0].PTZPosition.PanTilt.x == pytest.approx(-0.4)
        assert device.state()["presets"] == [
            {"token": token, "name": "door", "pan": pytest.approx(-0.4), "tilt": pytest.approx(0.2),
             "zoom": pytest.approx(0.7)}]

        await ptz.RemovePreset({"ProfileToken": "main", "PresetToken": token})
        assert await ptz.GetPresets({"ProfileToken": "main"}) == []
        with pytest.raises(zeep.exceptions.Fault) as err:
            await ptz.RemovePreset({"ProfileToken": "main", "PresetToken": token})
        assert "NoToken" in subcodes(err.value)
        with pytest.raises(zeep.exceptions.Fault) as err:
            await ptz.GotoPreset({"ProfileToken": "main", "PresetToken": "nope"})
        assert "NoToken" in subcodes(err.value)
    finally:
        await cam.close()


async def test_continuous_move_times_out() -> None:
    with OnvifDevice(MAIN_URL) as dev:
        cam = await connect(dev)
        try:
            ptz = await cam.create_ptz_service()
            await ptz.ContinuousMove({"ProfileToken": "main", "Velocity": {"Zoom": {"x": 1}},
                                      "Timeout": "PT0.2S"})
            await asyncio.sleep(0.5)
            state = dev.state()
            assert not state["moving"] and state["position"]["zoom"] == pytest.approx(0.1, abs=0.02)
        finally:
            await cam.close()


async def test_device_without_ptz() -> None:
    with OnvifDevice(MAIN_URL, ptz=False) as dev:
        cam = await connect(dev)
        try:
            assert PTZ_NS not in cam.xaddrs
            capabilities = await cam.get_capabilities()
            assert capabilities["PTZ"] is None and capabilities["Media"]["XAddr"].endswith("/onvif/media_service")
            with pytest.raises(ONVIFError):
                await cam.create_ptz_service()
            profiles = await (await cam.create_media_service()).GetProfiles()
            assert [p.token for p in profiles] == ["main"] and profiles[0].PTZConfiguration is None
            assert dev.state()["position"] is None
        finally:
            await cam.close()


async def test_clock_offset_is_reported_and_enforced() -> None:
    with OnvifDevice(MAIN_URL, clock_offset_s=3600) as dev:
        cam = await connect(dev)
        try:
            devmgmt = await cam.create_devicemgmt_service()
            t = (await devmgmt.GetSystemDateAndTime()).UTCDateTime
            reported = datetime(t.Date.Year, t.Date.Month, t.Date.Day, t.Time.Hour, t.Time.Minute,
                                t.Time.Second, tzinfo=timezone.utc)
            assert abs((reported - datetime.now(timezone.utc)).total_seconds() - 3600) < 5
            # The digest's Created is an hour off the device clock: refused, as strict cameras do.
            with pytest.raises(zeep.exceptions.Fault) as err:
                await devmgmt.GetDeviceInformation()
            assert "NotAuthorized" in subcodes(err.value)
        finally:
            await cam.close()
        # A client that corrects for the device clock is let in.
        cam = await connect(dev, adjust_time=True)
        try:
            assert 3590 < cam.dt_diff.total_seconds() < 3610
            info = await (await cam.create_devicemgmt_service()).GetDeviceInformation()
            assert info.SerialNumber == "VS-0001"
        finally:
            await cam.close()


DISCOVERY = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"


def probe(source: str, types: str | None, timeout: float) -> tuple[str, list[etree._Element]]:
    """Multicast one WS-Discovery Probe out of the interface with ``source``; return its
    MessageID and the replies that arrive within ``timeout`` (or 0.3 s after the first one:
    there is one device, a second answer would be a duplicate)."""
    message_id = f"urn:uuid:{uuid.uuid4()}"
    types_xml = f'<d:Types xmlns:dn="http://www.onvif.org/ver10/network/wsdl">{types}</d:Types>' if types else ""
    message = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="{WSA}" xmlns:d="{DISCOVERY}">'
        f"<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>"
        f"<a:MessageID>{message_id}</a:MessageID><a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>"
        f"</s:Header><s:Body><d:Probe>{types_xml}</d:Probe></s:Body></s:Envelope>")
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(source))
        sock.sendto(message.encode(), ("239.255.255.250", 3702))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, _ = sock.recvfrom(65536)
            except TimeoutError:
                break
            replies.append(etree.fromstring(data))
            deadline = min(deadline, time.monotonic() + 0.3)
    return message_id, replies


async def test_ws_discovery_in_a_network_namespace() -> None:
    with NetNamespace() as ns, OnvifDevice(MAIN_URL, netns=ns, discovery_address=ns.ns_address) as dev:
        assert dev.host == ns.ns_address
        for types in ("dn:NetworkVideoTransmitter", None):
            message_id, replies = await asyncio.to_thread(probe, ns.host_address, types, 3.0)
            assert len(replies) == 1
            reply = replies[0]
            assert reply.findtext(f"{{*}}Header/{{{WSA}}}RelatesTo") == message_id
            match = reply.find(f"{{*}}Body/{{{DISCOVERY}}}ProbeMatches/{{{DISCOVERY}}}ProbeMatch")
            xaddrs = match.findtext(f"{{{DISCOVERY}}}XAddrs")
            assert xaddrs == f"http://{ns.ns_address}:{dev.port}/onvif/device_service"
            # Types are QNames: their prefixes must be declared in the reply itself.
            reply_types = match.find(f"{{{DISCOVERY}}}Types")
            resolved = {(reply_types.nsmap[p], local) for p, local in
                        (t.split(":") for t in reply_types.text.split())}
            assert ("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter") in resolved
            assert "onvif://www.onvif.org/name/Valt%20Sim" in match.findtext(f"{{{DISCOVERY}}}Scopes").split()
            assert match.findtext(f"{{{WSA}}}EndpointReference/{{{WSA}}}Address").startswith("urn:uuid:")
        # The endpoint address is the device's identity: the same in every answer.
        _, again = await asyncio.to_thread(probe, ns.host_address, None, 3.0)
        address = f"{{*}}Body/{{{DISCOVERY}}}ProbeMatches/{{{DISCOVERY}}}ProbeMatch/{{{WSA}}}EndpointReference"
        assert again[0].findtext(f"{address}/{{{WSA}}}Address") == reply.findtext(f"{address}/{{{WSA}}}Address")

        _, replies = await asyncio.to_thread(probe, ns.host_address, "dn:Printer", 1.0)
        assert replies == []

        # The device is reachable over the veth from here, with the address discovery gave.
        cam = await connect(dev, host=ns.ns_address)
        try:
            assert cam.xaddrs[MEDIA_NS] == f"http://{ns.ns_address}:{dev.port}/onvif/media_service"
            info = await (await cam.create_devicemgmt_service()).GetDeviceInformation()
            assert info.Manufacturer == "ValtSim"
        finally:
            await cam.close()
