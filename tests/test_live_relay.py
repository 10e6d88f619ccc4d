"""Relayed live view in pieces: the media server's relay and the app server's relayed stream.

Fast tests of the logic, over the in-process bus; tests/test_cluster_live.py has the real
processes, NATS and Chromium.
"""

from __future__ import annotations

import asyncio
import time

from valt_core.auth.media_tokens import MediaClaims
from valt_core.bus.base import Message
from valt_core.bus.local import InProcessBus
from valt_core.bus.messages import LiveRevoke
from valt_core.live_relay import RelayedStream
from valt_core.media import relay as relay_module
from valt_core.media.direct import revoked_by
from valt_core.media.relay import RelayedCamera
from valt_core.transports.stream import LiveStream

INIT = ("video/mp4; codecs=\"avc1.42e01f\"", b"init-segment")


def piece(seq: int, kind: str = "media", key: bool = False, data: bytes = b"", part: str = "") -> Message:
    headers = {"valt-seq": str(seq), "valt-type": kind}
    if kind == "init":
        headers.update({"valt-mime": INIT[0], "valt-profile": "main", "valt-transcoding": "[]"})
    else:
        headers["valt-key"] = "1" if key else "0"
    if part:
        headers["valt-part"] = part
    return Message("valt.live.ms.1", data or f"frag{seq}".encode(), headers)


def drain(viewer) -> list[tuple[str, object]]:
    out = []
    while viewer.items:
        kind, payload, _arrival, _key = viewer.items.popleft()
        out.append((kind, payload))
    return out


async def test_a_relayed_stream_takes_each_piece_once_and_in_order() -> None:
    stream = RelayedStream("ms", 1)
    viewer = stream.add_viewer()
    await stream.receive(piece(5))  # before any init: cannot be shown
    await stream.receive(piece(6, "init", data=INIT[1]))
    for seq in (7, 8, 9):
        await stream.receive(piece(seq, key=(seq == 7)))
    # A replay for another subscriber: the init and GOP again, with their own numbers.
    for msg in (piece(6, "init", data=INIT[1]), piece(7, key=True), piece(8), piece(9)):
        await stream.receive(msg)
    await stream.receive(piece(10))
    assert drain(viewer) == [("init", INIT), ("media", b"frag7"), ("media", b"frag8"), ("media", b"frag9"),
                             ("media", b"frag10")]
    # A late viewer starts at the GOP.
    late = stream.add_viewer()
    assert [p for _k, p in drain(late)] == [INIT, b"frag7", b"frag8", b"frag9", b"frag10"]


async def test_after_a_hole_the_relayed_stream_waits_for_the_next_keyframe() -> None:
    stream = RelayedStream("ms", 1)
    viewer = stream.add_viewer()
    await stream.receive(piece(1, "init", data=INIT[1]))
    await stream.receive(piece(2, key=True))
    await stream.receive(piece(3))
    await stream.receive(piece(5))  # 4 was lost: 5 and 6 cannot be decoded
    await stream.receive(piece(6))
    await stream.receive(piece(7, key=True))
    await stream.receive(piece(8))
    assert [p for _k, p in drain(viewer)][1:] == [b"frag2", b"frag3", b"frag7", b"frag8"]
    assert stream.holes == 1


async def test_a_piece_in_parts_is_put_together_and_an_incomplete_one_dropped() -> None:
    stream = RelayedStream("ms", 1)
    viewer = stream.add_viewer()
    await stream.receive(piece(1, "init", data=INIT[1]))
    for i, chunk in enumerate((b"aa", b"bb", b"cc"), 1):
        await stream.receive(piece(2, key=True, data=chunk, part=f"{i}/3"))
    await stream.receive(piece(3, data=b"x1", part="1/2"))  # its second part never comes
    await stream.receive(piece(4))
    await stream.receive(piece(5, key=True))
    assert [p for _k, p in drain(viewer)][1:] == [b"aabbcc", b"frag5"]


async def test_the_relay_publishes_what_the_stream_shows_and_replays_for_a_newcomer(monkeypatch) -> None:
    monkeypatch.setattr(relay_module, "PART_BYTES", 4)
    bus = InProcessBus()
    source = LiveStream()
    source.offer_init(INIT)
    source.offer_media(b"key-frame", True, time.monotonic())
    relay = RelayedCamera(bus, "valt.live.ms.1", source)
    first = RelayedStream("ms", 1)
    sub = await bus.subscribe(first.subject, first.receive)
    relay.renew(replay=True)
    watcher = first.add_viewer()
    source.offer_media(b"delta", False, time.monotonic())
    for _ in range(50):
        if len(watcher.items) >= 3:
            break
        await asyncio.sleep(0.02)
    got = drain(watcher)
    assert got[0] == ("init", INIT) and got[1:] == [("media", b"key-frame"), ("media", b"delta")], got
    # A second app server subscribing later gets the init and the GOP by asking for a replay.
    second = RelayedStream("ms", 1)
    sub2 = await bus.subscribe(second.subject, second.receive)
    relay.renew(replay=True)
    for _ in range(50):
        if second.gop == [b"key-frame", b"delta"]:
            break
        await asyncio.sleep(0.02)
    assert second.init == INIT and second.gop == [b"key-frame", b"delta"]
    assert first.gop == [b"key-frame", b"delta"] and first.holes == 0  # the replay changed nothing there
    await relay.close()
    await sub.close()
    await sub2.close()
    await bus.close()


def test_a_revocation_covers_the_tokens_issued_before_it_for_what_it_names() -> None:
    now = time.time()
    revoke = LiveRevoke(session_id=7, until=now + 300, reason="signed out")
    assert revoked_by(revoke, MediaClaims(camera_id=1, user_id=2, expires_at=now + 100, session_id=7))
    assert not revoked_by(revoke, MediaClaims(camera_id=1, user_id=2, expires_at=now + 100, session_id=8))
    # A token issued after the revocation expires after its `until`.
    assert not revoked_by(revoke, MediaClaims(camera_id=1, user_id=2, expires_at=now + 400, session_id=7))
    by_user = LiveRevoke(user_id=2, until=now + 300, reason="disabled")
    assert revoked_by(by_user, MediaClaims(camera_id=9, user_id=2, expires_at=now + 10, session_id=1))
    assert not revoked_by(LiveRevoke(until=now + 300, reason="nothing named"),
                          MediaClaims(camera_id=0, user_id=0, expires_at=now + 10))


async def test_a_slow_viewer_of_a_relayed_stream_skips_to_a_keyframe_and_slows_nobody() -> None:
    stream = RelayedStream("ms", 1)
    fast, slow = stream.add_viewer(maxsize=1000), stream.add_viewer(maxsize=10)
    await stream.receive(piece(1, "init", data=INIT[1]))
    seq = 1
    for _gop in range(5):  # 5 GOPs of 8 fragments; the slow viewer reads nothing meanwhile
        for i in range(8):
            seq += 1
            await stream.receive(piece(seq, key=(i == 0)))
    fast_got = [p for k, p in drain(fast) if k == "media"]
    assert len(fast_got) == 40  # every fragment, in order
    assert fast_got == [f"frag{n}".encode() for n in range(2, 42)]
    slow_got = [p for k, p in drain(slow) if k == "media"]
    # It lost whole GOPs: what it kept starts at a keyframe, and it still has the newest ones.
    assert len(slow_got) < 40 and slow.dropped > 0
    assert slow_got[0] in {f"frag{2 + 8 * g}".encode() for g in range(5)}, slow_got[:2]
    assert slow_got[-1] == b"frag41"
