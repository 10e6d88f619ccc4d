"""WS-Discovery (the ONVIF way of finding devices): a multicast Probe, ProbeMatches back.

The Probe asks for ``dn:NetworkVideoTransmitter`` on 239.255.255.250:3702 (SOAP over UDP,
WS-Discovery of April 2005, as ONVIF Core prescribes). Each ProbeMatch names the device's
service addresses (XAddrs) and scopes such as ``onvif://www.onvif.org/name/...``.
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import unquote, urlsplit

from lxml import etree

from valt_core.cameras import DiscoveredCamera
from valt_core.cameras.multicast import multicast_query

log = logging.getLogger(__name__)

GROUP, PORT = "239.255.255.250", 3702
WSD_NS = "http://schemas.xmlsoap.org/ws/2005/04/discovery"


def probe_message(message_id: str) -> bytes:
    """A WS-Discovery Probe for ONVIF video transmitters."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="{WSD_NS}" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
 <s:Header>
  <a:Action s:mustUnderstand="1">{WSD_NS}/Probe</a:Action>
  <a:MessageID>{message_id}</a:MessageID>
  <a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>
  <a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>
 </s:Header>
 <s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>
</s:Envelope>""".encode()


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def parse_probe_matches(data: bytes, sender: str, message_id: str) -> list[DiscoveredCamera]:
    """The devices in one ProbeMatches datagram; ``[]`` for anything else (or another probe's answer).

    Matched by local names, so devices that use other namespace prefixes (or the 2009
    WS-Discovery namespace) are read alike.
    """
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return []
    relates = [el.text for el in root.iter() if _local(el.tag) == "RelatesTo"]
    if relates and relates[0] and relates[0].strip() != message_id:
        return []
    found = []
    for match in (el for el in root.iter() if _local(el.tag) == "ProbeMatch"):
        fields = {_local(el.tag): (el.text or "").strip() for el in match.iter()}
        xaddrs = [x for x in fields.get("XAddrs", "").split() if x.startswith("http")]
        if not xaddrs:
            continue
        # Prefer the address the answer came from: a device may list several interfaces.
        xaddr = next((x for x in xaddrs if urlsplit(x).hostname == sender), xaddrs[0])
        url = urlsplit(xaddr)
        scopes = _scopes(fields.get("Scopes", ""))
        host = url.hostname or sender
        port = url.port or (443 if url.scheme == "https" else 80)
        found.append(DiscoveredCamera(
            driver="onvif", address=host, name=scopes.get("name", ""),
            manufacturer=scopes.get("mfr", scopes.get("manufacturer", "")), model=scopes.get("hardware", ""),
            serial=fields.get("Address", "").removeprefix("urn:uuid:"),
            config={"host": host, "port": port},
        ))
    return found


def _scopes(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for scope in text.split():
        if scope.startswith("onvif://www.onvif.org/"):
            key, _, value = scope.removeprefix("onvif://www.onvif.org/").partition("/")
            if value and key not in out:
                out[key] = unquote(value)
    return out


async def discover(timeout_s: float, addresses: list[str]) -> list[DiscoveredCamera]:
    """Probe for ONVIF devices from ``addresses`` for ``timeout_s``; one entry per device."""
    message_id = f"urn:uuid:{uuid.uuid4()}"
    answers = await multicast_query(probe_message(message_id), GROUP, PORT, addresses, timeout_s)
    devices: dict[tuple[str, int], DiscoveredCamera] = {}
    for data, sender in answers:
        for cam in parse_probe_matches(data, sender, message_id):
            devices.setdefault((cam.config["host"], cam.config["port"]), cam)
    log.info("WS-Discovery found %d ONVIF device(s)", len(devices))
    return list(devices.values())
