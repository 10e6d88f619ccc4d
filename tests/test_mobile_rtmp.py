"""Mobile devices pushing RTMP/RTMPS: enrolment and keys, recording, refusals, reconnects, takeover.

The publishers are real (the ffmpeg CLI and PyAV, tests/peers/mobile_sim.py); the recordings are
checked by decoding them with PyAV, as a player would.
"""

from __future__ import annotations

import asyncio
import io
import time

import av
import pytest
from sqlmodel import select

from valt_core.db.models import AuditEvent, MobileDevice

from .peers.mobile_sim import FfmpegPublisher, SourceProxy, pyav_publish
from .test_recording import Studio, probe, wait_for

one_database = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the media side only


async def enrol(env, headers, name="iPad 1", room_id=None, expect=201, **extra):
    r = await env.client.post("/api/v1/devices", headers=headers, json={"name": name, "room_id": room_id, **extra})
    assert r.status_code == expect, await r.get_data(as_text=True)
    return await r.get_json()


def rtmp_port(env, scheme: str = "rtmp") -> int:
    return env.ctx.push.running["rtmp"].ports[scheme]


async def audits(env, action: str) -> list[AuditEvent]:
    async with env.ctx.db.session() as s:
        return list((await s.exec(select(AuditEvent).where(AuditEvent.action == action)
                                  .order_by(AuditEvent.id))).all())


async def test_devices_enrol_rotate_revoke_and_who_may(env):
    admin = env.bearer(await env.user("boss", "admin"))
    op = env.bearer(await env.user("otto", "operator"))
    viewer = env.bearer(await env.user("vic", "viewer"))
    r = await env.client.post("/api/v1/rooms", json={"name": "Field 1"}, headers=admin)
    room = (await r.get_json())["id"]

    dev = await enrol(env, admin, room_id=room)
    key = dev["stream_key"]
    assert len(key) >= 40 and dev["key_active"] and dev["room_id"] == room
    assert dev["publish_urls"] == [f"rtmp://127.0.0.1:{rtmp_port(env)}/live"]
    # It is a camera (driver mobile) whose settings never show the key or its hash.
    cam = await (await env.client.get(f"/api/v1/cameras/{dev['camera_id']}", headers=admin)).get_json()
    assert cam["driver"] == "mobile" and cam["config"]["key_hash"] == "********"
    listed = await (await env.client.get("/api/v1/devices", headers=admin)).get_data(as_text=True)
    assert key not in listed and "stream_key" not in listed

    # An operator (upload right) enrols their own device and sees only theirs.
    mine = await enrol(env, op, name="Phone", room_id=room)
    assert mine["user_id"] != dev["user_id"]
    seen = await (await env.client.get("/api/v1/devices", headers=op)).get_json()
    assert [d["id"] for d in seen] == [mine["id"]]
    assert (await env.client.get(f"/api/v1/devices/{dev['id']}", headers=op)).status_code == 404
    assert (await env.client.post(f"/api/v1/devices/{dev['id']}/key", headers=op)).status_code == 404
    await enrol(env, op, name="Other", room_id=room, user_id=dev["user_id"], expect=400)  # not for another
    # A viewer has no upload right.
    assert (await env.client.post("/api/v1/devices", headers=viewer, json={"name": "x"})).status_code == 403
    assert (await env.client.get("/api/v1/devices", headers=viewer)).status_code == 403
    # Bad input names the problem.
    r = await env.client.post("/api/v1/devices", headers=admin, json={"name": ""})
    assert r.status_code == 400 and "name" in await r.get_data(as_text=True)
    await enrol(env, admin, name="iPad 1", expect=409)

    # Rotation answers a new key once; revocation leaves none active.
    rotated = await (await env.client.post(f"/api/v1/devices/{dev['id']}/key", headers=admin)).get_json()
    assert rotated["stream_key"] != key and rotated["key_active"]
    revoked = await (await env.client.delete(f"/api/v1/devices/{dev['id']}/key", headers=admin)).get_json()
    assert not revoked["key_active"] and revoked["key_revoked_at"] and "stream_key" not in revoked
    assert [e.action for e in await audits(env, "device.create")] == ["device.create"] * 2
    assert len(await audits(env, "device.key.rotate")) == 1 and len(await audits(env, "device.key.revoke")) == 1

    # The app's rooms: where the device's user may record.
    rooms = await (await env.client.get(f"/api/v1/devices/{mine['id']}/rooms", headers=op)).get_json()
    assert [x["id"] for x in rooms] == [room]
    # The device's user records the room from the app with the room routes and their own token.
    for action, status in (("start", 201), ("pause", 200), ("resume", 200), ("stop", 200)):
        r = await env.client.post(f"/api/v1/rooms/{room}/record/{action}", headers=op,
                                  json={"name": "From the phone"} if action == "start" else None)
        assert r.status_code == status, (action, await r.get_data(as_text=True))
    assert (await r.get_json())["name"] == "From the phone"
    # The app moves its device out of the room.
    r = await env.client.patch(f"/api/v1/devices/{mine['id']}", headers=op, json={"room_id": None})
    assert r.status_code == 200 and (await r.get_json())["room_id"] is None


@one_database
async def test_an_enrolled_device_publishes_and_its_room_records_it(env_factory):
    env = await env_factory(segment_seconds=2)
    studio = Studio(env, await env.user("boss", "admin"))
    r = await env.client.post("/api/v1/rooms", json={"name": "Home visit"}, headers=studio.h)
    studio.room_id = (await r.get_json())["id"]
    dev = await enrol(env, studio.h, room_id=studio.room_id)
    url = f"{dev['publish_urls'][0]}/{dev['stream_key']}"
    pub = FfmpegPublisher(url, seconds=30).start()
    try:
        await studio.wait_status(dev["camera_id"], "online", timeout=15)
        still = await env.client.get(f"/api/v1/cameras/{dev['camera_id']}/snapshot", headers=studio.h)
        assert still.status_code == 200 and (await still.get_data())[:2] == b"\xff\xd8"
        # Testing the camera tells what the device sends, without taking its media from the engine.
        tested = await (await env.client.post(f"/api/v1/cameras/{dev['camera_id']}/test", headers=studio.h)).get_json()
        (stream,) = tested["streams"]
        assert (stream["codec"], stream["width"], stream["height"], stream["audio_codec"]) == ("h264", 640, 360, "aac")
        # The device's user records from the app with the room routes.
        rec = await studio.record("start", expect=201, name="Visit")
        began = time.monotonic()
        assert [t["camera_id"] for t in rec["tracks"]] == [dev["camera_id"]]
        await asyncio.sleep(5)
        rec = await studio.record("stop")
        wall = time.monotonic() - began
    finally:
        pub.stop()
    track = rec["tracks"][0]
    assert (track["video_codec"], track["audio_codec"], track["width"]) == ("h264", "aac", 640)
    # The track starts at the device's next keyframe (every 2 s here) and runs to the stop.
    assert wall - 2.3 <= track["duration_s"] <= wall + 0.3 and track["gaps"] == []
    seen = probe(await (await studio.media(rec["id"], track["id"])).get_data())
    assert (seen["video"], seen["audio"]) == ("h264", "aac")
    assert seen["duration"] == pytest.approx(track["duration_s"], abs=0.4)
    assert seen["frames"] == pytest.approx(25 * track["duration_s"], abs=5)
    started = await audits(env, "device.publish.start")
    assert started and started[-1].remote_addr == "127.0.0.1"


@one_database
async def test_wrong_revoked_and_missing_keys_are_refused_counted_and_audited(env_factory):
    env = await env_factory()
    admin = env.bearer(await env.user("boss", "admin"))
    dev = await enrol(env, admin)
    base, old_key = dev["publish_urls"][0], dev["stream_key"]
    await wait_for(lambda: _status_is(env, admin, dev["camera_id"], "offline"), 10, "the device camera to wait")
    new = await (await env.client.post(f"/api/v1/devices/{dev['id']}/key", headers=admin)).get_json()
    assert new["stream_key"] != old_key
    for key in ("not-a-key-of-anyone", old_key, ""):
        pub = FfmpegPublisher(f"{base}/{key}", seconds=3).start()
        assert await asyncio.to_thread(pub.wait, 20) != 0, key
    want = ["wrong key", "revoked key", "no key"]

    async def told():
        return [e.detail["reason"] for e in await audits(env, "device.publish.refused")] == want
    await wait_for(told, 10, "three refusals in the audit log")
    refused = await audits(env, "device.publish.refused")
    assert all(e.remote_addr == "127.0.0.1" for e in refused)
    assert refused[1].target_type == "device" and refused[1].target_id == str(dev["id"])
    # Nothing anywhere holds a key: not the audit detail, not the device's answer.
    assert not any(old_key in str(e.detail) or new["stream_key"] in str(e.detail) for e in refused)
    listed = await (await env.client.get(f"/api/v1/devices/{dev['id']}", headers=admin)).get_json()
    assert listed["refused_publishes"] == 1 and listed["last_refused_at"]
    async with env.ctx.db.session() as s:
        assert (await s.get(MobileDevice, dev["id"])).refused_publishes == 1


async def _status_is(env, headers, camera_id: int, status: str) -> bool:
    cam = await (await env.client.get(f"/api/v1/cameras/{camera_id}", headers=headers)).get_json()
    return cam["status"] == status


@one_database
async def test_a_drop_and_reconnect_from_another_address_continues_one_track_with_a_gap(env_factory):
    env = await env_factory(segment_seconds=2, gap_after_s=1.0, push_grace_s=30)
    studio = Studio(env, await env.user("boss", "admin"))
    r = await env.client.post("/api/v1/rooms", json={"name": "Field"}, headers=studio.h)
    studio.room_id = (await r.get_json())["id"]
    dev = await enrol(env, studio.h, room_id=studio.room_id)
    target = ("127.0.0.1", rtmp_port(env))
    wifi, lte = await SourceProxy(target, "127.0.0.1").start(), await SourceProxy(target, "127.0.0.2").start()
    first = FfmpegPublisher(wifi.url(f"live/{dev['stream_key']}"), seconds=60).start()
    second = None
    try:
        await studio.wait_status(dev["camera_id"], "online", timeout=15)
        rec = await studio.record("start", expect=201)
        await asyncio.sleep(4)
        wifi.drop()  # the network goes; the publisher fails and ends
        await asyncio.to_thread(first.wait, 10)
        await asyncio.sleep(2.5)
        second = FfmpegPublisher(lte.url(f"live/{dev['stream_key']}"), seconds=60).start()

        async def back():
            info = await (await env.client.get(f"/api/v1/devices/{dev['id']}", headers=studio.h)).get_json()
            return info["last_published_from"] == "127.0.0.2"
        await wait_for(back, 15, "the publish from 127.0.0.2")
        await asyncio.sleep(5)
        rec = await studio.record("stop")
    finally:
        first.stop()
        if second is not None:
            second.stop()
        await wifi.close()
        await lte.close()
    assert len(rec["tracks"]) == 1
    track = rec["tracks"][0]
    (gap,) = track["gaps"]
    assert 2.5 <= gap["start_s"] <= 5.5 and gap["end_s"] - gap["start_s"] >= 1.5
    seen = probe(await (await studio.media(rec["id"], track["id"])).get_data())
    assert seen["duration"] == pytest.approx(track["end_s"] - track["start_s"], abs=0.5)
    gap_in_file = (gap["start_s"] - track["start_s"], gap["end_s"] - track["start_s"])
    assert len([t for t in seen["times"] if t < gap_in_file[0]]) >= 50
    assert len([t for t in seen["times"] if t > gap_in_file[1]]) >= 75
    assert not [t for t in seen["times"] if gap_in_file[0] + 0.3 < t < gap_in_file[1] - 0.3]
    # One recording of the room: the reconnect did not start another.
    recs = await (await env.client.get("/api/v1/recordings", headers=studio.h)).get_json()
    assert recs["total"] == 1


@one_database
async def test_a_frozen_publisher_is_taken_over_by_a_new_publish_on_its_key(env_factory):
    env = await env_factory(segment_seconds=2, gap_after_s=1.0)
    studio = Studio(env, await env.user("boss", "admin"))
    r = await env.client.post("/api/v1/rooms", json={"name": "Sim lab"}, headers=studio.h)
    studio.room_id = (await r.get_json())["id"]
    dev = await enrol(env, studio.h, room_id=studio.room_id)
    url = f"{dev['publish_urls'][0]}/{dev['stream_key']}"
    frozen = FfmpegPublisher(url, seconds=60).start()
    newer = None
    try:
        await studio.wait_status(dev["camera_id"], "online", timeout=15)
        rec = await studio.record("start", expect=201)
        await asyncio.sleep(2.5)
        frozen.freeze()  # its connection stays open, silent: it must not lock the key out
        await asyncio.sleep(1)
        newer = FfmpegPublisher(url, seconds=60).start()
        await asyncio.sleep(5)
        assert newer.process.poll() is None  # accepted and still publishing
        rec = await studio.record("stop")
    finally:
        frozen.stop()
        if newer is not None:
            newer.stop()
    track = rec["tracks"][0]
    assert track["duration_s"] >= 6
    seen = probe(await (await studio.media(rec["id"], track["id"])).get_data())
    # Media from the newer publisher, after the takeover: frames in the last seconds of the file.
    assert max(seen["times"]) >= seen["duration"] - 1.0
    assert len([t for t in seen["times"] if t > seen["duration"] - 4]) >= 75


@one_database
async def test_rtmps_hevc_from_pyav_through_enhanced_rtmp_and_h264_from_the_ffmpeg_cli(env_factory):
    env = await env_factory(segment_seconds=2)
    assert env.ctx.push is not None
    env.ctx.settings.server.tls = True  # the media server's TLS switch: RTMPS opens beside RTMP
    await env.ctx.push.stop()
    await env.ctx.push.start()
    studio = Studio(env, await env.user("boss", "admin"))
    r = await env.client.post("/api/v1/rooms", json={"name": "Clinic"}, headers=studio.h)
    studio.room_id = (await r.get_json())["id"]
    dev = await enrol(env, studio.h, room_id=studio.room_id)
    urls = dev["publish_urls"]
    assert [u.split(":")[0] for u in urls] == ["rtmp", "rtmps"]
    # The device trusts the media server's (self-signed) certificate, as a phone set up for it would.
    cert = env.ctx.settings.data_dir / "tls" / "cert.pem"
    # H.265 in FLV is Enhanced RTMP (the hvc1 FourCC header): it passes through, never re-encoded.
    thread = pyav_publish(f"{urls[1]}/{dev['stream_key']}", seconds=12, size=(320, 240), codec="libx265",
                          ca_file=str(cert))
    try:
        await studio.wait_status(dev["camera_id"], "online", timeout=15)
    except AssertionError:
        raise AssertionError(f"the PyAV publisher: {thread.error!r}") from None
    rec = await studio.record("start", expect=201)
    await asyncio.sleep(4)
    rec = await studio.record("stop")
    await asyncio.to_thread(thread.join, 15)
    assert thread.error is None, thread.error
    track = rec["tracks"][0]
    assert (track["video_codec"], track["audio_codec"], track["width"]) == ("hevc", "aac", 320)
    data = await (await studio.media(rec["id"], track["id"])).get_data()
    with av.open(io.BytesIO(data)) as f:
        assert f.streams.video[0].codec_context.name == "hevc"
        assert sum(1 for _ in f.decode(video=0)) >= 50
    started = await audits(env, "device.publish.start")
    assert started[-1].detail["transport"] == "rtmps"
    # The ffmpeg CLI publishes RTMPS too (H.264 this time: another codec, so a new input).
    pub = FfmpegPublisher(f"{urls[1]}/{dev['stream_key']}", seconds=3, size="320x240").start()
    assert await asyncio.to_thread(pub.wait, 20) == 0, pub.stderr()

    async def two_rtmps():
        return len([e for e in await audits(env, "device.publish.start") if e.detail["transport"] == "rtmps"]) == 2
    await wait_for(two_rtmps, 10, "the ffmpeg publish over RTMPS")
