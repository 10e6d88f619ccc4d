"""A playback file never carries a video packet a decoder refuses outright.

A segment whose last sample was torn (the bytes its fragment's index promises are not all
there) gave a packet cut short; copied as it was, a player stopped at it ("Invalid data found
when processing input"). build_mp4 leaves such a packet out, and counts it.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np

from valt_core.media.codecs import nal_length_size, whole_nal_units
from valt_core.media.playback import SegmentRef, build_mp4


def fragmented_h264(frames: int = 50, fps: int = 25) -> bytes:
    """A fragmented MP4 of real H.264 (x264), one fragment per second, as Valt's segments are."""
    sink = io.BytesIO()
    out = av.open(sink, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    stream = out.add_stream("libx264", rate=fps, options={"g": str(fps), "preset": "ultrafast"})
    stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
    stream.time_base = Fraction(1, fps)
    rng = np.random.default_rng(7)
    for i in range(frames):
        picture = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)  # noise: every frame is large
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
    out.close()
    return sink.getvalue()


def decoded(path) -> int:
    with av.open(str(path)) as f:
        return sum(1 for _ in f.decode(video=0))


def test_nal_framing_checks():
    assert whole_nal_units(b"\x00\x00\x00\x02ab\x00\x00\x00\x01c", 4)
    assert not whole_nal_units(b"\x00\x00\x00\x05ab", 4)          # cut short
    assert not whole_nal_units(b"\x00\x00\x00\x01\x65\x88\x84", 4)  # Annex B start code read as lengths
    assert not whole_nal_units(b"\x00\x00", 4)
    assert nal_length_size("h264", b"\x01\x64\x00\x1f\xff") == 4
    assert nal_length_size("h264", b"\x00\x00\x00\x01\x67") is None  # Annex B extradata
    assert nal_length_size("aac", b"\x12\x10") is None


def test_a_torn_last_sample_is_left_out_and_the_rest_plays(tmp_path):
    whole = fragmented_h264()
    with av.open(io.BytesIO(whole)) as f:
        sizes = [p.size for p in f.demux(video=0) if p.size]
    torn = whole[:-(sizes[-1] // 2)]  # the last sample loses half its bytes, as in a cut-off write
    out = tmp_path / "out.mp4"
    result = build_mp4([SegmentRef("torn", 0.0, 2.0)], lambda _key: torn, str(out), 0.0, 2.0)
    assert result.dropped == 1 and result.video_frames == len(sizes) - 1
    assert decoded(out) == len(sizes) - 1  # every other frame decodes: the player is not stopped
    clean = tmp_path / "clean.mp4"
    assert build_mp4([SegmentRef("whole", 0.0, 2.0)], lambda _key: whole, str(clean), 0.0, 2.0).dropped == 0
    assert decoded(clean) == len(sizes)
