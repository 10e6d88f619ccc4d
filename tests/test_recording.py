"""Recording from real RTSP cameras (GStreamer) and checking the result as a player would."""

from __future__ import annotations

import asyncio
import io
import time

import av
import pytest
from sqlmodel import select

from valt_core.db.models import AuditEvent

from .conftest import STORES
from .peers.cameras import RtspCamera


async def wait_for(predicate, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Studio:
    """A room with cameras, driven through the API as an operator would."""

    def __init__(self, env, token):
        self.env, self.h = env, env.bearer(token)
        self.room_id = None

    async def setup(self, cameras: dict[str, dict]):
        r = await self.env.client.post("/api/v1/rooms", json={"name": "Interview 1"}, headers=self.h)
        self.room_id = (await r.get_json())["id"]
        ids = []
        for name, cam in cameras.items():
            r = await self.env.client.post("/api/v1/cameras", headers=self.h,
                                           json={"name": name, "room_id": self.room_id, **cam})
            assert r.status_code == 201, await r.get_json()
            ids.append((await r.get_json())["id"])
        return ids

    async def camera(self, cam_id):
        return await (await self.env.client.get(f"/api/v1/cameras/{cam_id}", headers=self.h)).get_json()

    async def wait_status(self, cam_id, status, timeout=20.0):
        async def check():
            return (await self.camera(cam_id))["status"] == status
        await wait_for(check, timeout, f"camera {cam_id} to be {status}")

    async def record(self, action: str, expect: int = 200, **body):
        r = await self.env.client.post(f"/api/v1/rooms/{self.room_id}/record/{action}", headers=self.h,
                                       json=body or None)
        assert r.status_code == expect, await r.get_data(as_text=True)
        return await r.get_json()

    async def recording(self, rec_id):
        return await (await self.env.client.get(f"/api/v1/recordings/{rec_id}", headers=self.h)).get_json()

    async def media(self, rec_id, track_id, query="", headers=None):
        r = await self.env.client.get(f"/api/v1/recordings/{rec_id}/tracks/{track_id}/media{query}",
                                      headers={**self.h, **(headers or {})})
        return r


async def replace_object(store, key: str, data: bytes) -> None:
    """Write ``data`` as ``key`` through the store's own writer."""
    writer = await store.open_writer(key)
    await writer.write(data)
    await writer.close()


def probe(data: bytes):
    """What a player sees in an MP4: codecs, duration, decoded video frames and their times."""
    with av.open(io.BytesIO(data)) as f:
        v = f.streams.video[0]
        a = f.streams.audio[0] if f.streams.audio else None
        info = {"video": v.codec_context.name, "audio": a.codec_context.name if a else None,
                "width": v.codec_context.width, "duration": f.duration / 1e6 if f.duration else 0.0}
        times = [float(fr.time) for fr in f.decode(video=0)]
    info["frames"] = len(times)
    info["times"] = times
    return info


@pytest.fixture
def h264_aac():
    cam = RtspCamera("--video", "h264", "--audio", "aac", "--fps", "25", "--gop", "25")
    yield cam
    cam.stop()


@pytest.mark.parametrize("storage", STORES, indirect=True)
async def test_record_h264_aac_plays_with_the_right_duration(env, h264_aac):
    studio = Studio(env, await env.user("op", "operator"))
    admin = Studio(env, await env.user("boss", "admin"))
    admin.room_id = None
    (cam_id,) = await admin.setup({"wide": {"driver": "rtsp", "config": {"url": h264_aac.url}}})
    studio.room_id = admin.room_id
    await studio.wait_status(cam_id, "online")
    rec = await studio.record("start", expect=201, name="Interview A")
    assert rec["state"] == "recording" and rec["name"] == "Interview A" and len(rec["tracks"]) == 1
    await asyncio.sleep(6)
    rec = await studio.record("stop")
    assert rec["state"] == "stopped"
    track = rec["tracks"][0]
    assert (track["video_codec"], track["audio_codec"], track["width"]) == ("h264", "aac", 640)
    assert track["segments"] >= 1 and track["gaps"] == []
    # Recording waits for the camera's next keyframe (GOP 1 s here): at most 1 s is not kept.
    assert 0 <= track["start_s"] <= 1.1
    assert 4.8 <= track["duration_s"] <= 6.2
    assert track["end_s"] == pytest.approx(track["start_s"] + track["duration_s"], abs=0.05)
    r = await studio.media(rec["id"], track["id"])
    assert r.status_code == 200 and r.headers["Content-Type"] == "video/mp4"
    data = await r.get_data()
    seen = probe(data)
    assert (seen["video"], seen["audio"]) == ("h264", "aac")
    assert seen["duration"] == pytest.approx(track["duration_s"], abs=0.3)
    assert seen["frames"] == pytest.approx(25 * track["duration_s"], abs=3)
    # Range requests, as a browser's player makes them.
    part = await studio.media(rec["id"], track["id"], headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and await part.get_data() == data[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{len(data)}"
    # Part of the recording: ?start=&end= (keyframe-aligned at the start).
    r = await studio.media(rec["id"], track["id"], "?start=2&end=4")
    cut = probe(await r.get_data())
    assert 2.0 <= cut["duration"] <= 3.1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the media side only: one database
@pytest.mark.parametrize("variant", [("h264", "pcmu"), ("h264", "pcma"), ("h264", "opus"), ("h265", "none")],
                         ids=["h264-pcmu", "h264-pcma", "h264-opus", "h265"])
async def test_other_codecs_are_recorded_without_transcoding(env, variant):
    video, audio = variant
    cam = RtspCamera("--video", video, "--audio", audio, "--gop", "25")
    try:
        studio = Studio(env, await env.user("boss", "admin"))
        (cam_id,) = await studio.setup({"cam": {"driver": "rtsp", "config": {"url": cam.url}}})
        await studio.wait_status(cam_id, "online")
        rec = await studio.record("start", expect=201)
        await asyncio.sleep(4)
        rec = await studio.record("stop")
    finally:
        cam.stop()
    track = rec["tracks"][0]
    assert track["video_codec"] == ("h264" if video == "h264" else "hevc")
    recorded_audio = {"pcmu": "pcm_mulaw", "pcma": "pcm_alaw", "opus": "opus", "none": ""}[audio]
    assert track["audio_codec"] == recorded_audio
    g711 = audio in ("pcmu", "pcma")
    # Stored as recorded (G.711 in QuickTime: MP4 does not take it) ...
    async with env.ctx.db.session() as s:
        from sqlmodel import select

        from valt_core.db.models import Segment
        keys = [seg.key for seg in (await s.exec(select(Segment))).all()]
    assert keys and all(k.endswith(".mov" if g711 else ".mp4") for k in keys)
    # ... and played back as MP4 (G.711 becomes AAC: the one conversion browsers need).
    seen = probe(await (await studio.media(rec["id"], track["id"])).get_data())
    assert seen["video"] == track["video_codec"]
    assert seen["audio"] == ("aac" if g711 else (recorded_audio or None))
    assert seen["frames"] >= 50


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the media side only: one database
async def test_camera_status_online_offline_and_no_frames(env_factory):
    env = await env_factory(no_frames_after_s=3.0, reconnect_max_s=2.0)
    from valt_core import hookimpl

    changes = []

    class Observer:
        @hookimpl
        async def valt_camera_status_changed(self, camera_id, status, previous):
            changes.append((camera_id, previous, status))

    env.ctx.plugins.pm.register(Observer())
    cam = RtspCamera("--gop", "25")
    try:
        studio = Studio(env, await env.user("boss", "admin"))
        (cam_id,) = await studio.setup({"cam": {"driver": "rtsp", "config": {"url": cam.url}}})
        await studio.wait_status(cam_id, "online")
        cam.freeze()  # connected, but nothing arrives
        started = time.monotonic()
        await studio.wait_status(cam_id, "no_frames", timeout=10)
        assert time.monotonic() - started < 10
        cam.thaw()
        cam.kill()
        await studio.wait_status(cam_id, "offline", timeout=15)
        cam.start()  # same port: the pipeline reconnects by itself
        await studio.wait_status(cam_id, "online", timeout=20)
    finally:
        cam.stop()
    seen = [status for (cid, _prev, status) in changes if cid == cam_id]
    assert seen[0] == "online" and "no_frames" in seen and "offline" in seen and seen[-1] == "online"


async def test_gap_when_the_camera_dies_and_the_track_plays_across_it(env_factory):
    env = await env_factory(gap_after_s=1.5, reconnect_max_s=1.0, segment_seconds=3)
    cam = RtspCamera("--gop", "25")
    try:
        studio = Studio(env, await env.user("boss", "admin"))
        (cam_id,) = await studio.setup({"cam": {"driver": "rtsp", "config": {"url": cam.url}}})
        await studio.wait_status(cam_id, "online")
        rec = await studio.record("start", expect=201)
        await asyncio.sleep(4)
        cam.kill()
        await asyncio.sleep(4)
        during = await studio.recording(rec["id"])
        open_gaps = during["tracks"][0]["gaps"]
        assert len(open_gaps) == 1 and open_gaps[0]["end_s"] is None  # shown while it lasts
        cam.start()
        await studio.wait_status(cam_id, "online", timeout=20)
        await asyncio.sleep(4)
        rec = await studio.record("stop")
    finally:
        cam.stop()
    track = rec["tracks"][0]
    (gap,) = track["gaps"]
    assert 3.0 <= gap["start_s"] <= 5.0
    assert gap["end_s"] - gap["start_s"] >= 3.5
    seen = probe(await (await studio.media(rec["id"], track["id"])).get_data())
    # The file spans the whole recording, the gap included, with frames on both sides of it.
    assert seen["duration"] == pytest.approx(track["end_s"] - track["start_s"], abs=0.4)
    gap_in_file = (gap["start_s"] - track["start_s"], gap["end_s"] - track["start_s"])
    before = [t for t in seen["times"] if t < gap_in_file[0]]
    after = [t for t in seen["times"] if t > gap_in_file[1]]
    assert len(before) >= 50 and len(after) >= 50
    assert not [t for t in seen["times"] if gap_in_file[0] + 0.2 < t < gap_in_file[1] - 0.2]


@pytest.mark.parametrize("storage", STORES, indirect=True)
async def test_pause_is_not_recorded_and_segments_are_chained(env_factory, tmp_path):
    env = await env_factory(segment_seconds=2)
    studio = Studio(env, await env.user("boss", "admin"))
    await studio.setup({"a": {"driver": "sim", "config": {"width": 320, "height": 240, "keyframe_interval": 25}},
                        "b": {"driver": "sim", "config": {"width": 320, "height": 240, "keyframe_interval": 25}}})
    rec = await studio.record("start", expect=201)
    await asyncio.sleep(4)
    paused = await studio.record("pause")
    assert paused["state"] == "paused"
    await studio.record("pause", expect=409)
    await asyncio.sleep(4)
    await studio.record("resume")
    await asyncio.sleep(4)
    rec = await studio.record("stop")
    await studio.record("stop", expect=404)
    assert len(rec["tracks"]) == 2
    for track in rec["tracks"]:
        # 8 s recorded of 12 s elapsed; each resume waits for a keyframe (1 s GOP).
        assert 6.0 <= track["end_s"] <= 8.6, track
        assert track["segments"] >= 3 and track["gaps"] == []
    report = await env.ctx.media.verify(rec["id"])
    assert report.ok and report.segments == sum(t["segments"] for t in rec["tracks"])
    # Tampering shows: change one byte of a stored segment.
    from sqlmodel import select

    from valt_core.db.models import Segment
    async with env.ctx.db.session() as s:
        segs = (await s.exec(select(Segment).order_by(Segment.id))).all()
    # Through the store itself (a file, or an object in a bucket), as someone with access to it would.
    store = env.ctx.storage
    raw = bytearray(b"".join([chunk async for chunk in store.read(segs[1].key)]))
    raw[len(raw) // 2] ^= 0xFF
    await replace_object(store, segs[1].key, bytes(raw))
    report = await env.ctx.media.verify(rec["id"])
    assert not report.ok and "content changed" in report.problems[0]
    # Removing a segment from the index breaks the chain of the next one.
    raw[len(raw) // 2] ^= 0xFF
    await replace_object(store, segs[1].key, bytes(raw))
    async with env.ctx.db.session() as s:
        await s.delete(await s.get(Segment, segs[1].id))
        await s.commit()
    report = await env.ctx.media.verify(rec["id"])
    assert any("missing from the index" in p for p in report.problems)
    assert any("hash chain broken" in p for p in report.problems)


@pytest.mark.parametrize("storage", STORES, indirect=True)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the media side only: one database
async def test_clips_keyframe_aligned_exact_and_zipped(env_factory):
    import zipfile

    from valt_camera_sim.clock import clock_seconds, read_clock

    env = await env_factory(segment_seconds=3)
    studio = Studio(env, await env.user("boss", "admin"))
    viewer = env.bearer(await env.user("vic", "viewer"))
    await studio.setup({"a": {"driver": "sim", "config": {"width": 320, "height": 240, "keyframe_interval": 50}},
                        "b": {"driver": "sim", "config": {"width": 320, "height": 240, "keyframe_interval": 50}}})
    rec = await studio.record("start", expect=201)
    await asyncio.sleep(9)
    rec = await studio.record("stop")
    rid = rec["id"]
    track = rec["tracks"][0]
    t0 = track["start_s"]

    async def clip(body, expect=202, headers=None):
        r = await env.client.post(f"/api/v1/recordings/{rid}/clips", json=body, headers=headers or studio.h)
        assert r.status_code == expect, await r.get_data(as_text=True)
        return await r.get_json()

    async def finished(clip_id):
        async def done():
            c = await (await env.client.get(f"/api/v1/clips/{clip_id}", headers=studio.h)).get_json()
            return c if c["state"] in ("done", "failed") else None
        return await wait_for(done, 30, f"clip {clip_id}")

    # Bad requests change nothing.
    for body, message in [({"start_s": 5, "end_s": 3}, "end must be after start"),
                          ({"start_s": 500, "end_s": 600}, "beyond the recording"),
                          ({"start_s": -1, "end_s": 2}, "negative"),
                          ({"start_s": 1, "end_s": 2, "track_ids": [999]}, "no track 999")]:
        r = await clip(body, expect=400)
        assert message in r["message"]
    assert (await env.client.post("/api/v1/recordings/999/clips", json={"start_s": 1, "end_s": 2},
                                  headers=studio.h)).status_code == 404
    assert (await env.client.post(f"/api/v1/recordings/{rid}/clips", json={"start_s": 1, "end_s": 2},
                                  headers=viewer)).status_code == 403

    start, end = t0 + 3.3, t0 + 6.3
    # Keyframe-aligned (default), one track: an MP4 starting at the keyframe before start.
    one = await finished((await clip({"start_s": start, "end_s": end, "track_ids": [track["id"]]}))["id"])
    assert one["state"] == "done" and len(one["files"]) == 1 and len(one["files"][0]["sha256"]) == 64
    r = await env.client.get(f"/api/v1/clips/{one['id']}/download", headers=viewer)
    assert r.status_code == 200 and r.headers["Content-Type"] == "video/mp4"
    data = await r.get_data()
    import hashlib
    assert hashlib.sha256(data).hexdigest() == one["files"][0]["sha256"]
    aligned = probe(data)
    assert 3.0 <= aligned["duration"] <= 5.1  # from the keyframe up to 2 s (one GOP) early
    # clip.download is written once per download, not once per Range request of a player.
    for wanted in ("bytes=0-99", "bytes=100-199", "bytes=200-", "bytes=-50"):
        r = await env.client.get(f"/api/v1/clips/{one['id']}/download", headers={**viewer, "Range": wanted})
        assert r.status_code == 206
    async with env.ctx.db.session() as s:
        downloads = (await s.exec(select(AuditEvent).where(AuditEvent.action == "clip.download",
                                                           AuditEvent.target_id == str(one["id"])))).all()
    assert len(downloads) == 2  # the whole file, then a player starting at byte 0
    # Exact: the first frame shown is the requested one (read off the burned-in clock).
    exact = await finished((await clip({"start_s": start, "end_s": end, "exact": True,
                                        "track_ids": [track["id"]]}))["id"])
    data = await (await env.client.get(f"/api/v1/clips/{exact['id']}/download", headers=viewer)).get_data()
    seen = probe(data)
    assert seen["duration"] == pytest.approx(3.0, abs=0.1)
    assert seen["frames"] == pytest.approx(75, abs=2)
    with av.open(io.BytesIO(data)) as f:
        frames = list(f.decode(video=0))
    first_clock = clock_seconds(read_clock(frames[0].to_ndarray(format="gray")))
    last_clock = clock_seconds(read_clock(frames[-1].to_ndarray(format="gray")))
    assert last_clock - first_clock == pytest.approx(3.0 - 0.04, abs=0.05)
    # All tracks: a zip with one MP4 per camera, and the markers of the range.
    both = await finished((await clip({"start_s": start, "end_s": end}))["id"])
    assert len(both["files"]) == 2
    r = await env.client.get(f"/api/v1/clips/{both['id']}/download", headers=viewer)
    assert r.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(await r.get_data())) as z:
        names = [n for n in z.namelist() if n != "markers.json"]
        assert sorted(names) == sorted(f["name"] for f in both["files"])
        assert "markers.json" in z.namelist()
        for name in names:
            assert probe(z.read(name))["frames"] >= 70


async def test_disk_nearly_full_stops_recording_cleanly_and_refuses_new_ones(env_factory, small_disk):
    env = await env_factory(data_dir=small_disk, min_free_mb=32, disk_check_s=0.3, segment_seconds=2)
    studio = Studio(env, await env.user("boss", "admin"))
    await studio.setup({"a": {"driver": "sim", "config": {"width": 320, "height": 240, "keyframe_interval": 25}}})
    rec = await studio.record("start", expect=201)
    await asyncio.sleep(3)
    (small_disk / "filler.bin").write_bytes(b"\0" * 40 * 2**20)  # someone else fills the disk

    async def stopped():
        return (await studio.recording(rec["id"]))["state"] == "stopped"
    await wait_for(stopped, 10, "the recording to stop")
    after = await studio.recording(rec["id"])
    assert "storage nearly full" in after["notes"]
    track = after["tracks"][0]
    assert track["segments"] >= 1
    assert probe(await (await studio.media(rec["id"], track["id"])).get_data())["frames"] >= 25
    refused = await env.client.post(f"/api/v1/rooms/{studio.room_id}/record/start", headers=studio.h)
    assert refused.status_code == 507
    assert "storage is nearly full" in (await refused.get_json())["message"]
    from sqlmodel import select

    from valt_core.db.models import AuditEvent
    async with env.ctx.db.session() as s:
        actions = {e.action for e in (await s.exec(select(AuditEvent))).all()}
    assert "recording.stopped_disk_full" in actions
