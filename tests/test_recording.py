"""Recording from real RTSP cameras (GStreamer) and checking the result as a player would."""

from __future__ import annotations

import asyncio
import io
import time

import av
import pytest

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


@pytest.mark.parametrize("variant", [("h264", "pcmu"), ("h265", "none")], ids=["h264-pcmu", "h265"])
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
    assert track["audio_codec"] == ("pcm_mulaw" if audio == "pcmu" else "")
    # Stored as recorded (G.711 in QuickTime: MP4 does not take it) ...
    async with env.ctx.db.session() as s:
        from sqlmodel import select

        from valt_core.db.models import Segment
        keys = [seg.key for seg in (await s.exec(select(Segment))).all()]
    assert all(k.endswith(".mov" if audio == "pcmu" else ".mp4") for k in keys)
    # ... and played back as MP4 (G.711 becomes AAC: the one conversion browsers need).
    seen = probe(await (await studio.media(rec["id"], track["id"])).get_data())
    assert seen["video"] == track["video_codec"]
    assert seen["audio"] == ("aac" if audio == "pcmu" else None)
    assert seen["frames"] >= 50


async def test_camera_status_online_offline_and_no_frames(env_factory):
    env = await env_factory(no_frames_after_s=3.0, reconnect_max_s=2.0)
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
