"""SSDP answers, device descriptions and PTZ units of the Axis driver."""

import pytest
from valt_camera_axis.discovery import parse_description, parse_search_reply, search_message
from valt_camera_axis.driver import _scale, _unscale
from valt_camera_axis.vapix import key_values

REPLY = (b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n"
         b"LOCATION: http://192.0.2.30:45895/rootdesc.xml\r\nSERVER: Linux, UPnP/1.0, Portable SDK\r\n"
         b"ST: urn:axis-com:service:BasicService:1\r\nUSN: uuid:Upnp-BasicDevice-1_0-ACCC8E0A1B2C::"
         b"urn:axis-com:service:BasicService:1\r\n\r\n")
DESCRIPTION = b"""<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><device>
<friendlyName>AXIS M3106 - ACCC8E0A1B2C</friendlyName><manufacturer>AXIS</manufacturer>
<modelName>AXIS M3106-L Mk II</modelName><serialNumber>ACCC8E0A1B2C</serialNumber>
<presentationURL>http://192.0.2.30:80/</presentationURL></device></root>"""


def test_search_and_reply():
    assert b"ST: urn:axis-com:service:BasicService:1" in search_message(3)
    assert parse_search_reply(REPLY) == "http://192.0.2.30:45895/rootdesc.xml"
    assert parse_search_reply(REPLY.replace(b"axis-com", b"other")) is None
    assert parse_search_reply(b"NOTIFY * HTTP/1.1\r\n\r\n") is None


def test_description_gives_the_web_port_not_the_upnp_port():
    cam = parse_description(DESCRIPTION, "192.0.2.30")
    assert cam is not None and cam.config == {"host": "192.0.2.30", "http_port": 80}
    assert (cam.model, cam.serial, cam.driver) == ("AXIS M3106-L Mk II", "ACCC8E0A1B2C", "axis")
    assert parse_description(DESCRIPTION.replace(b"AXIS</manufacturer>", b"Other</manufacturer>"), "x") is None
    assert parse_description(b"<broken", "x") is None


@pytest.mark.parametrize("low,high,value_low", [(-180, 180, -1.0), (-90, 20, -1.0), (1, 9999, 0.0)])
def test_units_round_trip(low, high, value_low):
    assert _scale(value_low, low, high, value_low) == low and _scale(1.0, low, high, value_low) == high
    for v in (value_low, 0.25, 0.5, 1.0):
        assert _unscale(_scale(v, low, high, value_low), low, high, value_low) == pytest.approx(v, abs=1e-4)


def test_query_answers():
    assert key_values("pan=12.5\ntilt=-3\nzoom=1\n") == {"pan": "12.5", "tilt": "-3", "zoom": "1"}
