"""The simulated camera gives real video: checked by decoding what it sends, as a player would."""

from __future__ import annotations

import asyncio
import io
import time

import av
import numpy as np
import pytest
from valt_camera_sim.clock import clock_seconds, read_clock
from valt_camera_sim.config import SimCameraConfig
from valt_camera_sim.driver import SimulatedCamera
from valt_camera_sim.source import local_utc_offset

from valt_core.cameras import Capability, PtzPosition
from valt_core.errors import NotFound, NotSupported


def record(camera: SimulatedCamera, seconds: float, path, profile: str = "main"):
    """Stream-copy ``seconds`` of the camera into an MP4, as the recorder will; returns the
    video packets' keyframe flags in order."""
    media = camera.open_media(profile)
    out = av.open(str(path), "w")
    mapping = {s: out.add_stream_from_template(s) for s in media.streams}
    keyframes = []
    first_video = None
    try:
        for packet in media.demux():
            if packet.stream.type == "video":
                if first_video is None:
                    first_video = packet.pts * packet.time_base
                if (packet.pts * packet.time_base) - first_video >= seconds:
                    break
                keyframes.append(packet.is_keyframe)
            packet.stream = mapping[packet.stream]
            out.mux(packet)
    finally:
        out.close()
        media.close()
    return keyframes


def test_recorded_stream_has_the_right_codecs_frames_gop_and_duration(tmp_path):
    cam = SimulatedCamera(SimCameraConfig(width=640, height=360, fps=25, keyframe_interval=25, audio=True))
    keyframes = record(cam, 4.0, tmp_path / "sim.mp4")
    with av.open(str(tmp_path / "sim.mp4")) as f:
        v, a = f.streams.video[0], f.streams.audio[0]
        assert (v.codec_context.name, v.codec_context.width, v.codec_context.height) == ("h264", 640, 360)
        assert (a.codec_context.name, a.codec_context.sample_rate) == ("aac", 48000)
        frames = sum(1 for _ in f.decode(video=0))
    assert frames == 100  # 4 s at 25 fps, every frame decodable from the first keyframe on
    assert keyframes[0] is True
    assert [i for i, k in enumerate(keyframes) if k] == [0, 25, 50, 75]
    with av.open(str(tmp_path / "sim.mp4")) as f:
        assert f.duration / 1e6 == pytest.approx(4.0, abs=0.1)
        samples = sum(fr.samples for fr in f.decode(audio=0))
    assert samples / 48000 == pytest.approx(4.0, abs=0.15)


def test_picture_shows_the_wall_clock_and_moves(tmp_path):
    cam = SimulatedCamera(SimCameraConfig(width=640, height=360, fps=25))
    media = cam.open_media()
    reads, lumas = [], []
    try:
        for packet in media.demux():
            for frame in packet.decode():
                y = frame.to_ndarray(format="gray")
                now = time.time()
                reads.append((read_clock(y), (now + local_utc_offset(now)) % 86400))
                lumas.append(y.astype(np.int16))
            if len(reads) >= 50:
                break
    finally:
        media.close()
    texts = [t for t, _ in reads]
    assert None not in texts, "the clock could not be read from some frames"
    shown = [clock_seconds(t) for t in texts]
    # Consecutive frames are 40 ms apart on the burned-in clock (a multiple of it when a busy
    # machine made the camera skip frames, as a real camera does) ...
    steps = np.diff(shown) / 0.04
    assert np.allclose(steps, np.round(steps), atol=0.04) and steps.min() >= 0.96
    assert (np.round(steps) == 1).mean() >= 0.9
    # ... and the clock is the wall clock: never ahead of it, and behind by at most the start-up.
    lags = [now - s for s, (_, now) in zip(shown, reads)]
    assert min(lags) > -0.05 and max(lags) < 2.5
    # The pattern moves: every frame differs visibly from the previous one.
    diffs = [np.abs(b - a).mean() for a, b in zip(lumas, lumas[1:])]
    assert min(diffs) > 1.0


def test_audio_beeps_for_a_tenth_of_each_second(tmp_path):
    cam = SimulatedCamera(SimCameraConfig(width=320, height=240, audio=True, tone_hz=1000))
    record(cam, 3.0, tmp_path / "a.mp4")
    with av.open(str(tmp_path / "a.mp4")) as f:
        pcm = np.concatenate([fr.to_ndarray().reshape(-1) for fr in f.decode(audio=0)])
    windows = pcm[: len(pcm) // 480 * 480].reshape(-1, 480)  # 10 ms windows
    loud = np.sqrt((windows ** 2).mean(axis=1)) > 0.05
    assert 0.06 < loud.mean() < 0.14  # about 100 ms of tone per second
    # The tone is at the configured pitch: count zero crossings in the loudest window.
    seg = windows[np.argmax(np.sqrt((windows ** 2).mean(axis=1)))]
    crossings = np.count_nonzero(np.diff(np.signbit(seg)))
    assert crossings == pytest.approx(2 * 1000 * 0.01, abs=2)


def test_sub_stream_is_half_size(tmp_path):
    cam = SimulatedCamera(SimCameraConfig(width=640, height=360))
    record(cam, 1.0, tmp_path / "sub.mp4", profile="sub")
    with av.open(str(tmp_path / "sub.mp4")) as f:
        frame = next(f.decode(video=0))
    assert (frame.width, frame.height) == (320, 180)


async def test_identity_streams_and_snapshot():
    cam = SimulatedCamera(SimCameraConfig(width=320, height=240, fps=10, audio=True))
    info = await cam.identify()
    assert info.manufacturer == "Valt" and info.serial.startswith("SIM-")
    streams = await cam.streams()
    assert [(s.name, s.width, s.height, s.codec, s.audio_codec) for s in streams] == [
        ("main", 320, 240, "h264", "aac"), ("sub", 160, 120, "h264", "aac")]
    jpeg = await cam.snapshot()
    assert jpeg[:2] == b"\xff\xd8"
    with av.open(io.BytesIO(jpeg), format="mjpeg") as f:
        frame = next(f.decode(video=0))
    assert (frame.width, frame.height) == (320, 240)
    assert read_clock(frame.to_ndarray(format="gray")) is not None


def test_ptz_view_turns_the_scene_but_not_the_clock():
    from valt_camera_sim.source import PatternPainter

    painter = PatternPainter(320, 240, 25)
    epoch = 1_700_000_000.0

    def luma(view):
        return painter.paint(100, epoch, view).to_ndarray()[:240]

    straight = luma(None)
    assert np.array_equal(luma(PtzPosition(0.0, 0.0, 0.0)), straight)
    panned, tilted, zoomed = luma(PtzPosition(0.5, 0, 0)), luma(PtzPosition(0, 0.5, 0)), luma(PtzPosition(0, 0, 1))
    assert not np.array_equal(panned, straight) and not np.array_equal(tilted, straight)
    assert np.count_nonzero(zoomed == 225) > 4 * np.count_nonzero(straight == 225)
    for picture in (panned, tilted, zoomed):
        assert read_clock(picture) == read_clock(straight) is not None


async def test_simulated_ptz_moves_and_keeps_presets():
    cam = SimulatedCamera(SimCameraConfig(width=320, height=240))
    await cam.ptz_move(1.0, -0.5, 0)
    await asyncio.sleep(0.3)
    moving = await cam.ptz_position()
    await cam.ptz_stop()
    stopped = await cam.ptz_position()
    assert moving.moving and not stopped.moving
    assert 0.2 < stopped.pan < 0.6 and -0.3 < stopped.tilt < -0.1
    door = await cam.save_preset("Door")
    await cam.ptz_absolute(-1, 1, 0.5)
    await cam.ptz_relative(0.5, -2, 1)
    assert await cam.ptz_position() == PtzPosition(-0.5, -1.0, 1.0, False)
    await cam.goto_preset(door.token)
    assert (await cam.ptz_position()).pan == stopped.pan
    assert await cam.save_preset("Door") == door  # same name: replaced, not added
    await cam.remove_preset(door.token)
    assert await cam.presets() == []
    with pytest.raises(NotFound):
        await cam.goto_preset(door.token)
    fixed = SimulatedCamera(SimCameraConfig(ptz=False))
    assert Capability.PTZ not in fixed.capabilities
    with pytest.raises(NotSupported):
        await fixed.ptz_stop()


def test_clock_text_rounds_into_the_next_second():
    from valt_camera_sim.clock import format_clock

    assert format_clock(12.9996) == "00:00:13.000"
    assert format_clock(12.9994) == "00:00:12.999"
    assert format_clock(86399.9999) == "00:00:00.000"
    assert format_clock(3600.04, utc_offset_s=3600) == "02:00:00.040"


def test_sim_height_not_divisible_by_4_is_rejected():
    # A height of 4k + 2 passed the even check, then never streamed (camera "offline").
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="multiple of 4"):
        SimCameraConfig(width=320, height=242)
    SimCameraConfig(width=322, height=244)  # any even width is fine
    # The sub stream (half size) of a valid camera keeps to the rule too.
    assert SimulatedCamera(SimCameraConfig(width=640, height=300))._size("sub") == (320, 148)


def test_sim_pipeline_failure_keeps_its_cause():
    # The encoder failing must surface as its own error, not as the demuxer's InvalidDataError.
    from valt_camera_sim.source import SimulatedMediaInput

    config = SimCameraConfig(width=320, height=240)
    with pytest.raises(ValueError, match="reshape"):
        SimulatedMediaInput(config, 320, 242)  # a size the painter cannot draw
