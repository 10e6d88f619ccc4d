"""SSDP discovery of Axis cameras: an M-SEARCH for Axis's basic service, then each device description.

Axis cameras answer UPnP searches for ``urn:axis-com:service:BasicService:1`` with a LOCATION
of their UPnP device description, which names the maker, model and serial number, and whose
``presentationURL`` is the camera's web (VAPIX) address.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import httpx

from valt_core.cameras import DiscoveredCamera
from valt_core.cameras.multicast import multicast_query

log = logging.getLogger(__name__)

GROUP, PORT = "239.255.255.250", 1900
SEARCH_TARGET = "urn:axis-com:service:BasicService:1"
#: Largest device description read (real ones are about 2 KB).
MAX_DESCRIPTION_BYTES = 64 * 1024


def search_message(timeout_s: float) -> bytes:
    """An SSDP M-SEARCH for Axis's basic service; MX tells devices how long they may wait to answer."""
    mx = max(1, min(5, int(timeout_s) - 1 or 1))
    return (f"M-SEARCH * HTTP/1.1\r\nHOST: {GROUP}:{PORT}\r\nMAN: \"ssdp:discover\"\r\n"
            f"MX: {mx}\r\nST: {SEARCH_TARGET}\r\n\r\n").encode()


def parse_search_reply(data: bytes) -> str | None:
    """The LOCATION of an ``HTTP/1.1 200 OK`` search reply for Axis's service; ``None`` for anything else."""
    lines = data.decode("latin-1").split("\r\n")
    if not lines or not lines[0].upper().startswith("HTTP/1.1 200"):
        return None
    headers = {k.strip().upper(): v.strip() for k, sep, v in (line.partition(":") for line in lines[1:]) if sep}
    if headers.get("ST") != SEARCH_TARGET or not headers.get("LOCATION", "").startswith("http://"):
        return None
    return headers["LOCATION"]


def parse_description(xml: bytes, sender: str) -> DiscoveredCamera | None:
    """The camera a UPnP device description describes, if its maker is Axis."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    fields = {el.tag.rpartition("}")[2]: (el.text or "").strip() for el in root.iter()}
    if "AXIS" not in fields.get("manufacturer", "").upper():
        return None
    web = urlsplit(fields.get("presentationURL", "") or fields.get("URLBase", ""))
    host = web.hostname or sender
    return DiscoveredCamera(
        driver="axis", address=host, name=fields.get("friendlyName", ""), manufacturer="AXIS",
        model=fields.get("modelName", "") or fields.get("modelNumber", ""), serial=fields.get("serialNumber", ""),
        config={"host": host, "http_port": web.port or 80},
    )


async def _describe(http: httpx.AsyncClient, location: str, sender: str) -> DiscoveredCamera | None:
    try:
        r = await http.get(location)
    except httpx.HTTPError as err:
        log.info("SSDP: cannot read %s: %s", location, err)
        return None
    if r.status_code != 200 or len(r.content) > MAX_DESCRIPTION_BYTES:
        return None
    return parse_description(r.content, sender)


async def discover(timeout_s: float, addresses: list[str]) -> list[DiscoveredCamera]:
    """Search for Axis cameras from ``addresses``; one entry per camera (by serial number)."""
    # Leave a little of the time for reading the descriptions.
    listen_s = max(0.5, timeout_s * 0.7)
    answers = await multicast_query(search_message(timeout_s), GROUP, PORT, addresses, listen_s)
    locations = {}
    for data, sender in answers:
        location = parse_search_reply(data)
        if location and urlsplit(location).hostname == sender:  # a reply naming another host is ignored
            locations.setdefault(location, sender)
    async with httpx.AsyncClient(timeout=max(0.5, timeout_s - listen_s)) as http:
        described = await asyncio.gather(*(_describe(http, loc, sender) for loc, sender in locations.items()))
    cameras: dict[str, DiscoveredCamera] = {}
    for cam in described:
        if cam is not None:
            cameras.setdefault(cam.serial or cam.address, cam)
    log.info("SSDP found %d Axis camera(s)", len(cameras))
    return list(cameras.values())
