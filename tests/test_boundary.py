"""The media engine stands alone: no web app, no database, only settings, storage, drivers and a bus."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys

from valt_core.bus import InProcessBus
from valt_core.bus.messages import (
    ALL_EVENTS,
    CameraSpec,
    Done,
    IngestCamera,
    RecordingEnded,
    SegmentClosed,
    SegmentOpened,
    StartRecording,
    StopRecording,
    TrackEnded,
    TrackSpec,
    answer_error,
    command_subject,
    decode,
)
from valt_core.cameras.service import CameraService
from valt_core.media.engine import MediaEngine
from valt_core.plugins import PluginHost
from valt_core.settings import load_settings

#: Modules a media server must not need.
APP_ONLY = ("quart", "sqlmodel", "sqlalchemy", "aiosqlite", "aiomysql", "alembic", "hypercorn",
            "valt_core.db", "valt_core.context", "valt_core.app", "valt_core.api", "valt_core.web")


def test_the_media_engine_imports_nothing_of_the_web_app_or_the_database():
    code = ("import sys, valt_core.media.engine\n"
            f"print('\\n'.join(m for m in sys.modules if m.startswith({APP_ONLY!r})))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == [], loaded


async def test_engine_records_on_commands_over_the_bus_and_tells_the_index_in_events(tmp_path):
    settings = load_settings(None, {"VALT_DATA_DIR": str(tmp_path)})
    settings.media.segment_seconds = 2
    settings.media.min_free_mb = 0
    plugins = PluginHost.load([])
    storage = plugins.build_storage_backend("local", {"path": str(tmp_path / "media")})
    bus = InProcessBus()
    engine = MediaEngine(settings, storage, CameraService(plugins, 5.0), bus, name="ms1")
    events: list = []

    async def collect(msg):
        events.append((msg.headers, decode(msg.data)))

    await bus.consume_durable(ALL_EVENTS, "test", collect)
    await engine.start()

    async def ask(command):
        answer = await bus.request(command_subject("ms1"), command.encode(), 30)
        assert answer_error(answer.headers) is None, answer.headers
        return decode(answer.data)

    camera = CameraSpec(id=1, name="door", driver="sim",
                        config={"width": 320, "height": 240, "keyframe_interval": 25})
    try:
        await ask(IngestCamera(camera=camera))
        await ask(StartRecording(recording_id=5, room_id=2, tracks=[TrackSpec(track_id=9, camera=camera)]))
        await asyncio.sleep(5.5)
        done = await ask(StopRecording(recording_id=5, reason="test"))
        assert isinstance(done, Done) and done.upto > 0
        # A second stop is refused with the media server's own error, carried over the bus.
        again = await bus.request(command_subject("ms1"), StopRecording(recording_id=5).encode(), 5)
        assert answer_error(again.headers).code == "conflict"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while (not events or int(events[-1][0]["valt-seq"]) < done.upto) and loop.time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await engine.stop()
    kinds = [e.kind for _h, e in events]
    assert [int(h["valt-seq"]) for h, _e in events] == list(range(1, len(events) + 1))
    opened = [e for _h, e in events if isinstance(e, SegmentOpened)]
    closed = [e for _h, e in events if isinstance(e, SegmentClosed)]
    # About 5.5 s in 2 s segments (a keyframe each second): each told opened and then closed, in
    # order; a segment closes at the first keyframe at or after 2 s, so every one but the last
    # lasts 2 or 3 s. (How many fit depends on when the simulated camera's first keyframe came,
    # which a busy machine delays: two or three.)
    seqs = [e.seq for e in opened]
    assert seqs == [e.seq for e in closed] == list(range(1, len(seqs) + 1)) and len(seqs) >= 2, kinds
    for o, c in zip(opened, closed):
        data = b"".join([chunk async for chunk in storage.read(o.key)])
        assert (len(data), hashlib.sha256(data).hexdigest()) == (c.bytes, c.sha256)
    durations = [c.duration_s for c in closed]
    assert all(1.95 <= d <= 3.05 for d in durations[:-1]) and 0 < durations[-1] <= 3.05, durations
    assert 4.0 <= sum(durations) <= 6.5, durations
    assert opened[0].video_codec == "h264" and (opened[0].width, opened[0].height) == (320, 240)
    ended = [e for _h, e in events if isinstance(e, (TrackEnded, RecordingEnded))]
    assert ended == [TrackEnded(recording_id=5, track_id=9, failed=None, errors=0, last_error=None),
                     RecordingEnded(recording_id=5, cause="command", reason="test", notes=[])]
