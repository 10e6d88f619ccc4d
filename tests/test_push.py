"""The push registry's logic without a network: keys, takeover, feeds across publishers, the grace window.

Tags here are hand-made FLV payloads (an AVC sequence header, key and inter frames); the
journeys with real publishers are in test_mobile_rtmp.py.
"""

from __future__ import annotations

import struct
import threading
import time

import pytest

from valt_core.push import (
    ACCEPTED,
    NO_KEY,
    REVOKED_KEY,
    VIDEO,
    WRONG_KEY,
    NotPublishing,
    PushRegistry,
    _Feed,
    flv_header,
    flv_tag,
    hash_stream_key,
    new_stream_key,
)

AVC_CONFIG = b"\x17\x00\x00\x00\x00" + b"\x01\x42\x00\x1e\xff\xe1"
OTHER_CONFIG = b"\x17\x00\x00\x00\x00" + b"\x01\x64\x00\x28\xff\xe1"
KEY = b"\x17\x01\x00\x00\x00" + b"key"
INTER = b"\x27\x01\x00\x00\x00" + b"inter"


def tags(data: bytes, header: bool = True) -> list[tuple[int, int, bytes]]:
    """The (type, timestamp, payload) of every tag in an FLV byte stream (from its start, or not)."""
    assert (data[:3] == b"FLV") == header
    pos, out = 13 if header else 0, []
    while pos + 11 <= len(data):
        kind, size = data[pos], int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | data[pos + 7] << 24
        out.append((kind, ts, data[pos + 11:pos + 11 + size]))
        pos += 11 + size + 4
    return out


def drain(feed: _Feed) -> bytes:
    chunks = []
    while feed.chunks:
        chunks.append(feed.read())
    return b"".join(chunks)


def test_flv_tag_layout_and_header():
    tag = flv_tag(VIDEO, 0x01020304, b"abc")
    assert tag[0] == 9 and tag[1:4] == b"\x00\x00\x03"
    assert tag[4:7] == b"\x02\x03\x04" and tag[7] == 0x01  # low 24 bits, then the extension byte
    assert tag[11:14] == b"abc" and struct.unpack(">I", tag[-4:])[0] == 14
    assert flv_header(audio=False)[4] == 0x01 and flv_header(audio=True)[4] == 0x05


def test_keys_are_random_hashed_and_told_apart():
    reg = PushRegistry()
    key, old = new_stream_key(), new_stream_key()
    assert key != old and len(key) >= 40
    ep = reg.endpoint("dev-1-abcdef", hash_stream_key(key), (hash_stream_key(old),))
    assert reg.authenticate(key) == (ACCEPTED, ep)
    assert reg.authenticate(old) == (REVOKED_KEY, ep)
    assert reg.authenticate("guess") == (WRONG_KEY, None)
    assert reg.authenticate("") == (NO_KEY, None)
    # A revoked key (empty hash) opens nothing, not even with an empty key.
    reg.endpoint("dev-1-abcdef", "", (hash_stream_key(key),))
    assert reg.authenticate(key) == (REVOKED_KEY, ep)


def test_an_endpoint_nobody_reads_is_gone(monkeypatch):
    reg = PushRegistry()
    key = new_stream_key()
    ep = reg.endpoint("dev-2-abcdef", hash_stream_key(key))
    monkeypatch.setattr(time, "monotonic", lambda: ep.touched_at + 60)
    assert reg.authenticate(key) == (WRONG_KEY, None)


def test_release_only_forgets_the_key_it_registered():
    reg = PushRegistry()
    new = hash_stream_key("new")
    reg.endpoint("dev-3-abcdef", new)
    reg.release("dev-3-abcdef", hash_stream_key("old"))  # an old driver closing late
    assert reg.authenticate("new")[0] == ACCEPTED
    reg.release("dev-3-abcdef", new)
    assert reg.authenticate("new")[0] == WRONG_KEY


def test_open_waits_briefly_then_says_nothing_publishes():
    ep = PushRegistry().endpoint("dev-4-abcdef", hash_stream_key("k"))
    started = time.monotonic()
    with pytest.raises(NotPublishing):
        ep.open(grace_s=1, wait_s=0.3)
    assert time.monotonic() - started < 1.0


def test_a_new_publish_takes_over_and_closes_the_old_connection():
    ep = PushRegistry().endpoint("dev-5-abcdef", hash_stream_key("k"))
    closed = []
    first = ep.publish("10.0.0.1", lambda: closed.append("first"))
    second = ep.publish("10.0.0.2", lambda: closed.append("second"))
    assert closed == ["first"] and first.ended and ep.current is second
    first.close()  # the old connection's own end must not unseat the new one
    assert ep.current is second


def test_a_reconnect_continues_the_feed_later_and_a_new_codec_ends_it():
    ep = PushRegistry().endpoint("dev-6-abcdef", hash_stream_key("k"))
    first = ep.publish("10.0.0.1", lambda: None)
    first.tag(VIDEO, 5000, AVC_CONFIG)
    first.tag(VIDEO, 5000, KEY)
    feed = _Feed(ep, first, grace_s=30)
    ep.feed = feed
    first.tag(VIDEO, 5040, INTER)
    written = tags(drain(feed))
    # The codec settings, then the keyframe at 0 and the next frame 40 ms on.
    assert [(k, ts) for k, ts, _ in written] == [(9, 0), (9, 0), (9, 40)]
    assert written[0][2] == AVC_CONFIG

    first.close()  # the network dropped
    time.sleep(0.2)
    again = ep.publish("10.0.0.99", lambda: None)  # another address, its clock from 0
    again.tag(VIDEO, 0, AVC_CONFIG)
    again.tag(VIDEO, 0, INTER)  # nothing before a keyframe joins
    again.tag(VIDEO, 0, KEY)
    again.tag(VIDEO, 40, INTER)
    more = tags(drain(feed), header=False)
    assert [p for _, _, p in more] == [KEY, INTER]  # no second codec header: the same stream goes on
    assert more[0][1] >= 200 and more[1][1] == more[0][1] + 40  # moved on by the outage

    third = ep.publish("10.0.0.3", lambda: None)
    third.tag(VIDEO, 0, OTHER_CONFIG)
    third.tag(VIDEO, 0, KEY)
    assert feed.eof  # other codec settings: this input ends, the next one starts from them


def test_a_feed_ends_when_the_grace_window_passes():
    ep = PushRegistry().endpoint("dev-7-abcdef", hash_stream_key("k"))
    pub = ep.publish("10.0.0.1", lambda: None)
    pub.tag(VIDEO, 0, AVC_CONFIG)
    pub.tag(VIDEO, 0, KEY)
    feed = ep.feed = _Feed(ep, pub, grace_s=0.3)
    drain(feed)
    pub.close()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(feed.read()))
    started = time.monotonic()
    reader.start()
    reader.join(3)
    assert got == [b""] and 0.25 <= time.monotonic() - started < 2.0
