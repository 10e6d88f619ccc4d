"""The ingest pipeline's timeline, in milliseconds: packets of a made-up demuxer through ``_pump``.

What a muxer needs from it: every packet of a kind strictly after the one before, in whole ticks
of its time base, whatever the camera stamps (a keyframe a tick before the frame it follows, a
restart back to zero), and the spacing of the camera's own stamps kept after a jump.
"""

from __future__ import annotations

import time
from fractions import Fraction

from valt_core.media.pipeline import ONLINE, CameraPipeline

TB = Fraction(1, 90000)


class FakePacket:
    """As much of a PyAV packet as the pipeline reads and writes."""

    def __init__(self, dts: int, keyframe: bool = False) -> None:
        self.dts = self.pts = dts
        self.size = 1000
        self.stream_index = 0
        self.time_base = TB
        self.is_keyframe = keyframe


class FakeStream:
    index = 0


class FakeMedia:
    def __init__(self, packets: list[FakePacket]) -> None:
        self.packets = packets

    def demux(self, *_streams):
        yield from self.packets


class Collect:
    """A thread sink keeping what it is given."""

    def __init__(self) -> None:
        self.packets = []

    def on_connected(self, connected) -> None:
        pass

    def on_packet(self, mp) -> None:
        self.packets.append((mp.packet.dts, mp.dts_s))


def pump(stamps: list[tuple[int, bool]]) -> list[tuple[int, float]]:
    """(dts, dts_s) of each packet as the pipeline's sinks see them."""
    pipe = CameraPipeline(driver=None, name="fake")  # never started: _pump alone
    pipe.status = ONLINE  # nothing to tell the (absent) event loop
    sink = Collect()
    pipe.sinks = (sink,)
    pipe._pump(FakeMedia([FakePacket(d, k) for d, k in stamps]), FakeStream(), None, {}, time.monotonic())
    return sink.packets


def strictly_increasing(values) -> bool:
    return all(b > a for a, b in zip(values, values[1:]))


def test_a_keyframe_stamped_a_tick_early_is_put_just_after_the_frame_before():
    # Large stamps (a camera up for an hour), each a frame then a keyframe one tick before it:
    # the float difference rounds down by one for about a quarter of them.
    for base in range(316_994_000, 316_995_000, 7):
        out = pump([(base - 3600, True), (base, False), (base - 1, True), (base + 3600, False)])
        dts = [d for d, _ in out]
        assert strictly_increasing(dts), (base, dts)
        assert strictly_increasing([s for _, s in out]), (base, out)
        assert dts[2] == dts[1] + 1, (base, dts)  # just after, not further
        assert dts[3] - dts[2] == 3601, (base, dts)  # the camera's own spacing from there on


def test_a_restart_back_to_zero_keeps_going_forward_at_the_cameras_pace():
    stamps = [(1_000_000_000 + i * 3600, i % 50 == 0) for i in range(10)]
    stamps += [(i * 3600, i % 50 == 0) for i in range(10)]
    dts = [d for d, _ in pump(stamps)]
    assert strictly_increasing(dts), dts
    steps = [b - a for a, b in zip(dts, dts[1:])]
    assert steps[:9] == [3600] * 9 and steps[10:] == [3600] * 9, steps
