"""WS-Discovery answers as devices of different makes send them."""

import os

from valt_camera_onvif.discovery import parse_probe_matches, probe_message

MID = "urn:uuid:0a6dc791-2be6-4991-9af1-454778a1917a"


def match(relates_to: str, ns: str, xaddrs: str, scopes: str) -> bytes:
    return f"""<?xml version="1.0"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
  xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsd="{ns}"
  xmlns:tdn="http://www.onvif.org/ver10/network/wsdl">
 <SOAP-ENV:Header><wsa:RelatesTo>{relates_to}</wsa:RelatesTo></SOAP-ENV:Header>
 <SOAP-ENV:Body><wsd:ProbeMatches><wsd:ProbeMatch>
  <wsa:EndpointReference><wsa:Address>urn:uuid:cafe-0001</wsa:Address></wsa:EndpointReference>
  <wsd:Types>tdn:NetworkVideoTransmitter</wsd:Types>
  <wsd:Scopes>{scopes}</wsd:Scopes>
  <wsd:XAddrs>{xaddrs}</wsd:XAddrs><wsd:MetadataVersion>1</wsd:MetadataVersion>
 </wsd:ProbeMatch></wsd:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>""".encode()


def test_probe_asks_for_video_transmitters_with_our_message_id():
    text = probe_message(MID).decode()
    assert "dn:NetworkVideoTransmitter" in text and MID in text
    assert "http://schemas.xmlsoap.org/ws/2005/04/discovery" in text


def test_answer_read_with_scopes_and_the_xaddr_of_the_sender():
    data = match(MID, "http://schemas.xmlsoap.org/ws/2005/04/discovery",
                 "http://169.254.3.4/onvif/device_service http://192.0.2.7:8080/onvif/device_service",
                 "onvif://www.onvif.org/name/Lobby%20Cam onvif://www.onvif.org/hardware/DS-2DE4 "
                 "onvif://www.onvif.org/mfr/Acme onvif://www.onvif.org/type/ptz")
    (cam,) = parse_probe_matches(data, "192.0.2.7", MID)
    assert (cam.driver, cam.address, cam.name, cam.model, cam.manufacturer) == \
        ("onvif", "192.0.2.7", "Lobby Cam", "DS-2DE4", "Acme")
    assert cam.config == {"host": "192.0.2.7", "port": 8080}


def test_other_namespace_versions_are_read_and_strangers_ignored():
    data = match(MID, "http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01",
                 "http://192.0.2.8/onvif/device_service", "")
    (cam,) = parse_probe_matches(data, "192.0.2.8", MID)
    assert cam.config == {"host": "192.0.2.8", "port": 80}
    # An answer to somebody else's probe, garbage, and a match without an HTTP address.
    assert parse_probe_matches(match("urn:uuid:other", "x", "http://192.0.2.9/", ""), "192.0.2.9", MID) == []
    assert parse_probe_matches(b"\x00not xml", "192.0.2.9", MID) == []
    assert parse_probe_matches(match(MID, "x", "soap.udp://192.0.2.9", ""), "192.0.2.9", MID) == []


async def test_making_a_device_keeps_the_proxy_settings(monkeypatch):
    from valt_camera_onvif.device import _onvif_camera

    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    camera = _onvif_camera("192.0.2.1", 80, "u", "p")
    assert os.environ["https_proxy"] == "http://proxy.example:3128"
    await camera.close()
