"""The fake Axis camera (tests/peers/axis_device.py) answers as VAPIX documents: checked here with
httpx's Digest client, PyAV for its snapshots, and a raw SSDP M-SEARCH inside a network namespace."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import socket
from xml.etree import ElementTree as ET

import av
import httpx
import pytest

from tests.peers.axis import AxisDevice
from tests.peers.netns import NetNamespace

RTSP_PORT = 8554


@pytest.fixture
def device():
    with AxisDevice(rtsp_port=RTSP_PORT) as d:
        yield d


@pytest.fixture
async def client(device):
    async with httpx.AsyncClient(base_url=device.url, auth=httpx.DigestAuth("root", "pass"), timeout=10) as c:
        yield c


def md5(value: str) -> str:
    return hashlib.md5(value.encode()).hexdigest()


def lines(response: httpx.Response) -> dict[str, str]:
    """A ``key=value`` text answer as a dict."""
    return dict(line.split("=", 1) for line in response.text.splitlines() if "=" in line)


async def ptz(client: httpx.AsyncClient, cgi: str = "ptz.cgi", **args) -> httpx.Response:
    return await client.get(f"/axis-cgi/com/{cgi}", params=args)


async def test_device_info_and_parameters(device, client):
    r = await client.post("/axis-cgi/basicdeviceinfo.cgi",
                          json={"apiVersion": "1.0", "context": "c1", "method": "getAllProperties"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["apiVersion"] == "1.0" and body["context"] == "c1"
    props = body["data"]["propertyList"]
    assert props["Brand"] == "AXIS" and props["ProdNbr"] == "Q6075-E" and props["SerialNumber"] == "ACCC8E000001"
    assert props["ProdFullName"] == "AXIS Q6075-E PTZ Network Camera" and props["Version"] == "10.12.220"

    r = await client.post("/axis-cgi/basicdeviceinfo.cgi", json={
        "apiVersion": "1.0", "method": "getProperties", "params": {"propertyList": ["ProdNbr", "Version"]}})
    assert r.json()["data"]["propertyList"] == {"ProdNbr": "Q6075-E", "Version": "10.12.220"}
    r = await client.post("/axis-cgi/basicdeviceinfo.cgi", json={
        "apiVersion": "1.0", "method": "getProperties", "params": {"propertyList": ["Nope"]}})
    assert r.json()["error"] == {"code": 1000, "message": "Property not supported: Nope"}
    r = await client.post("/axis-cgi/basicdeviceinfo.cgi", content=b"{not json")
    assert r.status_code == 200 and r.json()["error"]["code"] == 4000
    r = await client.post("/axis-cgi/basicdeviceinfo.cgi", json={"apiVersion": "1.0", "method": "reboot"})
    assert r.json()["error"]["code"] == 2004

    r = await client.get("/axis-cgi/param.cgi",
                         params={"action": "list", "group": "root.Brand,Properties,Network.RTSP.Port,PTZ"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert all(line.startswith("root.") for line in r.text.splitlines())
    params = lines(r)
    assert params["root.Brand.ProdNbr"] == "Q6075-E"
    assert params["root.Properties.PTZ.PTZ"] == "yes"
    assert params["root.Properties.Firmware.Version"] == "10.12.220"
    assert params["root.Properties.System.SerialNumber"] == "ACCC8E000001"
    assert "640x360" in params["root.Properties.Image.Resolution"].split(",")
    assert params["root.Network.RTSP.Port"] == str(RTSP_PORT)
    assert params["root.PTZ.Limit.L1.MinPan"] == "-180" and params["root.PTZ.Limit.L1.MaxZoom"] == "9999"
    r = await client.get("/axis-cgi/param.cgi", params={"action": "list", "group": "StreamProfile.*.Name,Nope"})
    assert r.text == ("root.StreamProfile.S0.Name=main\nroot.StreamProfile.S1.Name=sub\n"
                      "# Error: Error -1 getting param in group 'Nope'\n")

    r = await client.post("/axis-cgi/streamprofile.cgi",
                          json={"apiVersion": "1.0", "method": "list", "params": {"streamProfileName": []}})
    profiles = {p["name"]: p["parameters"] for p in r.json()["data"]["streamProfile"]}
    assert profiles == {"main": "videocodec=h264&resolution=1280x720&fps=25",
                        "sub": "videocodec=h264&resolution=640x360&fps=25"}
    r = await client.post("/axis-cgi/apidiscovery.cgi",
                          json={"apiVersion": "1.0", "method": "getApiList", "params": {"id": "ptz-*"}})
    assert [api["id"] for api in r.json()["data"]["apiList"]] == ["ptz-control"]


async def test_digest_authentication(device):
    url = f"{device.url}/axis-cgi/param.cgi?action=list&group=Brand.ProdNbr"
    async with httpx.AsyncClient(timeout=10) as anonymous:
        r = await anonymous.get(url)
        assert r.status_code == 401
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith("Digest ")
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        assert fields["realm"] == "AXIS_ACCC8E000001" and fields["qop"] == "auth" and len(fields["nonce"]) >= 16
        assert device.state()["auth_failures"] == 0  # asking without credentials is no failure

        r = await anonymous.get(url, auth=httpx.DigestAuth("root", "wrong"))
        assert r.status_code == 401
        r = await anonymous.get(url, auth=httpx.DigestAuth("admin", "pass"))
        assert r.status_code == 401
        assert device.state()["auth_failures"] == 2

        # The right password with a nonce the device never issued: 401 stale=TRUE, not a failure.
        uri, nonce = "/axis-cgi/param.cgi?action=list&group=Brand.ProdNbr", "00ff" * 8
        response = md5(f"{md5('root:AXIS_ACCC8E000001:pass')}:{nonce}:00000001:abc:auth:{md5('GET:' + uri)}")
        r = await anonymous.get(url, headers={"Authorization": (
            f'Digest username="root", realm="AXIS_ACCC8E000001", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", qop=auth, nc=00000001, cnonce="abc", algorithm=MD5')})
        assert r.status_code == 401 and "stale=TRUE" in r.headers["www-authenticate"]
        assert device.state()["auth_failures"] == 2

        r = await anonymous.get(url, auth=httpx.DigestAuth("root", "pass"))
        assert r.status_code == 200 and r.text == "root.Brand.ProdNbr=Q6075-E\n"
    # No authentication on the UPnP description and the test hook, as on a camera.
    async with httpx.AsyncClient(timeout=10) as anonymous:
        assert (await anonymous.get(f"{device.url}/rootdesc.xml")).status_code == 200


async def test_snapshot_is_a_jpeg_of_the_asked_size(client):
    for size, expected in [("640x360", (640, 360)), (None, (1920, 1080))]:
        r = await client.get("/axis-cgi/jpg/image.cgi", params={"resolution": size} if size else {})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.content[:2] == b"\xff\xd8"
        with av.open(io.BytesIO(r.content), format="mjpeg") as container:
            frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == expected
    r = await client.get("/axis-cgi/jpg/image.cgi", params={"resolution": "123x45"})
    assert r.status_code == 400


async def test_ptz(device, client):
    r = await ptz(client, continuouspantiltmove="50,0", camera="1")
    assert r.status_code == 204
    await asyncio.sleep(0.4)
    assert device.state()["moving"] is True
    assert (await ptz(client, move="stop")).status_code == 204
    state = device.state()
    assert state["moving"] is False
    pan = float(lines(await ptz(client, query="position"))["pan"])
    assert 5 < pan < 40  # 50 % of 60 deg/s for ~0.4 s, to the right
    assert pan == pytest.approx(state["position"]["pan"], abs=1e-3)  # stopped: it stays put
    await asyncio.sleep(0.2)
    assert float(lines(await ptz(client, query="position"))["pan"]) == pytest.approx(pan, abs=1e-3)

    assert (await ptz(client, pan="30", tilt="-20", zoom="2000")).status_code == 204
    pos = lines(await ptz(client, query="position"))
    assert (float(pos["pan"]), float(pos["tilt"]), int(pos["zoom"])) == (30, -20, 2000)
    assert (await ptz(client, rpan="10", rtilt="-5", rzoom="500")).status_code == 204
    pos = lines(await ptz(client, query="position"))
    assert (float(pos["pan"]), float(pos["tilt"]), int(pos["zoom"])) == (40, -25, 2500)
    assert (await ptz(client, tilt="-150")).status_code == 204  # within VAPIX's range, beyond the limit
    assert float(lines(await ptz(client, query="position"))["tilt"]) == -90

    assert (await ptz(client, "ptzconfig.cgi", setserverpresetname="door", camera="1")).status_code == 204
    await ptz(client, pan="-100", tilt="0", zoom="1")
    assert (await ptz(client, gotoserverpresetname="door")).status_code == 204
    pos = lines(await ptz(client, query="position"))
    assert (float(pos["pan"]), float(pos["tilt"]), int(pos["zoom"])) == (40, -90, 2500)
    r = await ptz(client, query="presetposall")
    assert r.text.splitlines() == ["Preset Positions for camera 1", "presetposno1=Home", "presetposno2=door"]
    assert device.state()["presets"]["door"]["pan"] == 40
    assert (await ptz(client, "ptzconfig.cgi", removeserverpresetname="door")).status_code == 204
    assert "door" not in (await ptz(client, query="presetposall")).text

    for args, error in [({"gotoserverpresetname": "door"}, "Error:gotoserverpresetname: unknown value: door"),
                        ({"query": "bogus"}, "Error:query: unknown value: bogus"),
                        ({"pan": "abc"}, "Error:pan: invalid value: abc"),
                        ({"continuouspantiltmove": "150,0"}, "Error:continuouspantiltmove: invalid value: 150")]:
        r = await ptz(client, **args)
        assert (r.status_code, r.headers["content-type"].split(";")[0], r.text) == (200, "text/plain", error + "\n")
    r = await ptz(client, "ptzconfig.cgi", removeserverpresetname="door")
    assert r.status_code == 200 and r.text.startswith("Error:")
    assert (await ptz(client, move="home")).status_code == 204
    assert device.state()["position"] == {"pan": 0, "tilt": 0, "zoom": 1}


async def test_without_ptz():
    with AxisDevice(ptz=False) as device:
        async with httpx.AsyncClient(base_url=device.url, auth=httpx.DigestAuth("root", "pass")) as client:
            assert (await ptz(client, query="position")).status_code == 404
            assert (await ptz(client, "ptzconfig.cgi", setserverpresetname="x")).status_code == 404
            r = await client.get("/axis-cgi/param.cgi", params={"action": "list", "group": "Properties.PTZ,PTZ"})
            assert r.text == "root.Properties.PTZ.PTZ=no\n# Error: Error -1 getting param in group 'PTZ'\n"
            r = await client.post("/axis-cgi/basicdeviceinfo.cgi",
                                  json={"apiVersion": "1.0", "method": "getAllProperties"})
            assert r.json()["data"]["propertyList"]["ProdType"] == "Network Camera"


def m_search(sock: socket.socket, st: str) -> None:
    sock.sendto((f'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n'
                 f"MX: 1\r\nST: {st}\r\n\r\n").encode(), ("239.255.255.250", 1900))


def replies(sock: socket.socket, wait: float) -> list[dict[str, str]]:
    """Every SSDP reply arriving within ``wait`` seconds, as upper-cased headers (+ STATUS)."""
    found: list[dict[str, str]] = []
    sock.settimeout(wait)
    try:
        while True:
            data, _ = sock.recvfrom(4096)
            status, *rest = data.decode().split("\r\n")
            found.append({"STATUS": status} | {k.strip().upper(): v.strip()
                                                for k, _, v in (x.partition(":") for x in rest) if k})
    except TimeoutError:
        return found


async def test_ssdp_discovery_in_a_namespace():
    with NetNamespace() as ns, AxisDevice(netns=ns, ssdp_address=ns.ns_address) as device:
        assert device.host == ns.ns_address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((ns.host_address, 0))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ns.host_address))
            m_search(sock, "urn:axis-com:service:BasicService:1")
            [reply] = await asyncio.to_thread(replies, sock, 1.0)
            assert reply["STATUS"] == "HTTP/1.1 200 OK"
            assert reply["ST"] == "urn:axis-com:service:BasicService:1"
            assert reply["USN"] == "uuid:Upnp-BasicDevice-1_0-ACCC8E000001::urn:axis-com:service:BasicService:1"
            assert reply["LOCATION"] == f"http://{ns.ns_address}:{device.port}/rootdesc.xml"
            assert "EXT" in reply and "max-age" in reply["CACHE-CONTROL"] and "UPnP/1.0" in reply["SERVER"]

            async with httpx.AsyncClient(timeout=10) as http:
                r = await http.get(reply["LOCATION"])
            ns_ = {"u": "urn:schemas-upnp-org:device-1-0"}
            desc = ET.fromstring(r.content).find("u:device", ns_)
            assert desc.findtext("u:manufacturer", namespaces=ns_) == "AXIS"
            assert desc.findtext("u:serialNumber", namespaces=ns_) == "ACCC8E000001"
            assert desc.findtext("u:friendlyName", namespaces=ns_) == "AXIS Q6075-E - ACCC8E000001"
            assert desc.findtext("u:deviceType", namespaces=ns_) == "urn:schemas-upnp-org:device:Basic:1"

            m_search(sock, "upnp:rootdevice")
            [reply] = await asyncio.to_thread(replies, sock, 1.0)
            assert reply["USN"] == "uuid:Upnp-BasicDevice-1_0-ACCC8E000001::upnp:rootdevice"
            m_search(sock, "ssdp:all")  # UPnP: one reply per thing the device is
            found = await asyncio.to_thread(replies, sock, 1.0)
            assert sorted(r["ST"] for r in found) == sorted([
                "upnp:rootdevice", "uuid:Upnp-BasicDevice-1_0-ACCC8E000001",
                "urn:schemas-upnp-org:device:Basic:1", "urn:axis-com:service:BasicService:1"])
            m_search(sock, "urn:schemas-upnp-org:device:MediaRenderer:1")
            assert await asyncio.to_thread(replies, sock, 1.0) == []
        assert device.state()["ssdp_replies"] == 6
