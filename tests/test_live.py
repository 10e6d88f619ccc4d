"""Live view over the ``wss`` transport: tokens, the fMP4 stream, sharing and slow viewers."""

from __future__ import annotations

import io
import json
import time

import av
import pytest
from quart.testing.connections import WebsocketDisconnectError
from sqlmodel import select

from valt_core.auth.media_tokens import issue_media_token
from valt_core.db.models import AuditEvent

from .peers.cameras import RtspCamera
from .test_recording import Studio, wait_for


async def live_token(env, headers, camera_id):
    r = await env.client.get(f"/api/v1/cameras/{camera_id}/live", headers=headers)
    assert r.status_code == 200, await r.get_data(as_text=True)
    return await r.get_json()


async def receive_stream(ws, seconds: float = 0.0, fragments: int = 0):
    """Read the init message, init segment and media until enough arrived."""
    init = json.loads(await ws.receive())
    assert init["type"] == "init"
    init_segment = await ws.receive()
    media = []
    first_at = time.monotonic()
    while (seconds and time.monotonic() - first_at < seconds) or (fragments and len(media) < fragments):
        media.append(await ws.receive())
    return init, init_segment, media


def decode(init_segment: bytes, media: list[bytes]):
    with av.open(io.BytesIO(init_segment + b"".join(media))) as f:
        return [fr for fr in f.decode(video=0)]


async def test_live_stream_plays_from_a_keyframe_at_once(env):
    from valt_camera_sim.clock import clock_seconds, read_clock

    studio = Studio(env, await env.user("boss", "admin"))
    viewer_h = env.bearer(await env.user("vic", "viewer"))
    (cam_id,) = await studio.setup({"a": {"driver": "sim", "config": {"width": 320, "height": 240,
                                                                         "keyframe_interval": 50, "audio": True}}})
    await studio.wait_status(cam_id, "online")
    live = await live_token(env, viewer_h, cam_id)
    assert live["endpoints"]["wss"].startswith(f"/live/{cam_id}/ws?token=")
    # Watching is recorded in the audit log: who, which camera.
    async with env.ctx.db.session() as s:
        (event,) = (await s.exec(select(AuditEvent).where(AuditEvent.action == "camera.live"))).all()
    assert event.target_id == str(cam_id) and event.actor_name == "vic"
    # The stream is prepared by the first viewer; a later viewer starts from the GOP cache.
    async with env.client.websocket(live["endpoints"]["wss"]) as ws:
        await receive_stream(ws, fragments=5)
    started = time.monotonic()
    async with env.client.websocket(live["endpoints"]["wss"]) as ws:
        init, init_segment, media = await receive_stream(ws, fragments=1)
        first_picture = time.monotonic() - started
        more = [await ws.receive() for _ in range(150)]
    assert first_picture < 0.5
    assert init["mime"].startswith('video/mp4; codecs="avc1.') and "mp4a.40.2" in init["mime"]
    assert init["transcoding"] == []
    frames = decode(init_segment, media + more)
    assert len(frames) >= 45  # about a third of the fragments are audio (AAC, 47 per second)
    clocks = [clock_seconds(read_clock(f.to_ndarray(format="gray"))) for f in frames]
    assert all(b > a for a, b in zip(clocks, clocks[1:]))  # moving video, in order


async def test_tokens_are_checked(env):
    studio = Studio(env, await env.user("boss", "admin"))
    (a, b) = await studio.setup({"a": {"driver": "sim", "config": {"width": 320, "height": 240}},
                                 "b": {"driver": "sim", "config": {"width": 320, "height": 240}}})
    assert (await env.client.get(f"/api/v1/cameras/{a}/live")).status_code == 401
    assert (await env.client.get("/api/v1/cameras/999/live", headers=studio.h)).status_code == 404
    good = (await live_token(env, studio.h, a))["token"]
    expired, _ = issue_media_token(env.ctx.secret, a, 1, ttl_s=-1)
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for path, code, _reason in [
        (f"/live/{a}/ws", 4401, "live token is required"),
        (f"/live/{a}/ws?token={forged}", 4401, "not valid"),
        (f"/live/{a}/ws?token={expired}", 4401, "expired"),
        (f"/live/{b}/ws?token={good}", 4403, "another camera"),
    ]:
        async with env.client.websocket(path) as ws:
            with pytest.raises(WebsocketDisconnectError) as info:
                await ws.receive()
        assert info.value.args[0] == code, path


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the media side only: one database
async def test_viewers_share_the_same_bytes(env):
    studio = Studio(env, await env.user("boss", "admin"))
    (cam_id,) = await studio.setup({"a": {"driver": "sim", "config": {"width": 320, "height": 240,
                                                                         "keyframe_interval": 25}}})
    await studio.wait_status(cam_id, "online")
    url = (await live_token(env, studio.h, cam_id))["endpoints"]["wss"]
    async with env.client.websocket(url) as one, env.client.websocket(url) as two:
        _, init1, m1 = await receive_stream(one, fragments=40)
        _, init2, m2 = await receive_stream(two, fragments=40)
    assert init1 == init2
    assert len(set(m1) & set(m2)) >= 20  # the very same fragment bytes, made once
    assert len((await env.ctx.media.live_stream(cam_id)).viewers) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the media side only: one database
@pytest.mark.parametrize("variant", [("h264", "pcmu"), ("h265", "none")], ids=["g711", "hevc"])
async def test_browser_incompatible_codecs_are_converted_while_watched(env, variant):
    video, audio = variant
    cam = RtspCamera("--video", video, "--audio", audio, "--gop", "25")
    try:
        studio = Studio(env, await env.user("boss", "admin"))
        (cam_id,) = await studio.setup({"c": {"driver": "rtsp", "config": {"url": cam.url}}})
        await studio.wait_status(cam_id, "online")
        url = (await live_token(env, studio.h, cam_id))["endpoints"]["wss"]
        async with env.client.websocket(url) as ws:
            init, init_segment, media = await receive_stream(ws, fragments=80)
    finally:
        cam.stop()
    assert init["mime"].startswith('video/mp4; codecs="avc1.')
    if audio == "pcmu":
        assert "mp4a.40.2" in init["mime"] and init["transcoding"] == ["audio pcm_mulaw -> aac"]
    else:
        assert init["transcoding"] == ["video hevc -> h264"] and init["profile"] == "main"
    frames = decode(init_segment, media)
    assert len(frames) >= 20
    with av.open(io.BytesIO(init_segment + b"".join(media))) as f:
        assert f.streams.video[0].codec_context.name == "h264"
        if audio == "pcmu":
            assert f.streams.audio[0].codec_context.name == "aac"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the media side only: one database
async def test_h265_camera_with_an_h264_sub_stream_is_watched_on_the_sub_stream(env):
    main = RtspCamera("--video", "h265", "--size", "640x360", "--gop", "25")
    sub = RtspCamera("--video", "h264", "--size", "320x180", "--gop", "25")
    try:
        studio = Studio(env, await env.user("boss", "admin"))
        (cam_id,) = await studio.setup({"c": {"driver": "rtsp", "config": {"url": main.url, "sub_url": sub.url}}})
        await studio.wait_status(cam_id, "online")
        url = (await live_token(env, studio.h, cam_id))["endpoints"]["wss"]
        async with env.client.websocket(url) as ws:
            init, init_segment, media = await receive_stream(ws, fragments=80)
        # Recording still takes the main stream, untouched.
        assert env.ctx.engine.pipelines[cam_id].connected.video.codec_context.name == "hevc"
    finally:
        main.stop()
        sub.stop()
    assert init["transcoding"] == [] and init["profile"] == "sub", init
    assert init["mime"].startswith('video/mp4; codecs="avc1.')
    frames = decode(init_segment, media)
    assert len(frames) >= 20
    with av.open(io.BytesIO(init_segment + b"".join(media))) as f:
        assert (f.streams.video[0].codec_context.width, f.streams.video[0].codec_context.height) == (320, 180)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the media side only: one database
async def test_live_stream_stops_when_nobody_watches(env):
    studio = Studio(env, await env.user("boss", "admin"))
    (cam_id,) = await studio.setup({"a": {"driver": "sim", "config": {"width": 320, "height": 240}}})
    await studio.wait_status(cam_id, "online")
    url = (await live_token(env, studio.h, cam_id))["endpoints"]["wss"]
    async with env.client.websocket(url) as ws:
        await receive_stream(ws, fragments=5)
    assert cam_id in env.ctx.engine.live_streams

    async def gone():
        return cam_id not in env.ctx.engine.live_streams
    await wait_for(gone, 20, "the idle live stream to stop")
