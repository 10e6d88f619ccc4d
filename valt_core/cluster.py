"""The app server's watch over its media servers: presence, ingest on arrival, failover.

Every second it reads the presence bucket (each media server renews its entry; a dead one's
expires after ``[bus] lease_s``). A media server that appears, or restarted, is told to ingest
the enabled cameras assigned to it. One that was present and is gone loses its cameras to the
least loaded present server of its pool: each camera is reassigned, and a recording that was
running goes on on the new server in the same recording, from the next segment number, with the
outage as a gap in each track (the lost server's unfinished segments are indexed first, read
from the shared store). Nothing is moved while this app server itself has not been connected to
the bus for long enough to tell a dead server from a bus that was away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from .bus.base import Bus, BusUnavailable, KeyValue
from .db.models import Camera, MediaServer, Segment, Track
from .db.types import utcnow
from .errors import ValtError
from .media.leases import BUCKET as LEASES
from .media.leases import OWNERS
from .media.presence import BUCKET as PRESENCE
from .media.presence import read_presence

if TYPE_CHECKING:
    from .media_control import MediaControl

log = logging.getLogger(__name__)
#: How often presence is read.
WATCH_S = 1.0
#: How often the rows of present media servers are written when nothing else changed (their last seen).
STORE_S = 10.0


class ClusterWatch:
    """Keeps the media servers' rows and cameras in step with who is present (module docstring)."""

    def __init__(self, control: "MediaControl", bus: Bus, lease_s: float) -> None:
        self.control = control
        self.db = control.db
        self.bus = bus
        self.lease_s = lease_s
        #: Presence of each media server at the last look.
        self.present: dict[str, dict[str, Any]] = {}
        self._kv: KeyValue | None = None
        self._task: asyncio.Task | None = None
        self._reachable_since: float | None = None
        self._moving: set[str] = set()
        self._keyed: set[tuple[str, Any]] = set()
        self._stored: dict[str, tuple[Any, Any]] = {}
        self._stored_at = 0.0

    def storage_of_recording(self, recording_id: int) -> dict[str, Any] | None:
        """The store state of a media server recording ``recording_id`` whose store is away
        (``{"status": "spooling", "message": ...}``), else ``None``: as its presence said last."""
        for state in self.present.values():
            storage = state.get("storage") or {}
            if storage.get("status") == "spooling" and recording_id in (state.get("recordings") or ()):
                return storage
        return None

    async def start(self) -> None:
        """Start watching."""
        self._task = asyncio.create_task(self._run(), name="cluster-watch")

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except BusUnavailable:
                self._reachable_since = None
            except Exception:  # noqa: BLE001 - one bad look must not end the watch
                log.exception("media servers: watch failed; again in %g s", WATCH_S)
            await asyncio.sleep(WATCH_S)

    async def tick(self) -> None:
        """One look at the presence bucket, and what follows from it."""
        if self._kv is None:
            # Made here: media servers may read and write these buckets, not create them.
            await self.bus.key_value(LEASES, ttl_s=self.lease_s)
            await self.bus.key_value(OWNERS)
            self._kv = await self.bus.key_value(PRESENCE, ttl_s=self.lease_s)
        now: dict[str, dict[str, Any]] = {}
        for name in await self._kv.keys():
            entry = await self._kv.get(name)
            if entry is not None:
                now[name] = read_presence(entry.value)
        if self._reachable_since is None:
            self._reachable_since = time.monotonic()
        before, self.present = self.present, now
        for name, state in now.items():
            old = before.get(name)
            if old is None or old.get("started_at") != state.get("started_at"):
                log.info("media server %s is here (version %s)", name, state.get("version", "?"))
                await self._arrived(name, state)
        await self._give_live_keys(now)
        await self._store(now)
        settled = time.monotonic() - self._reachable_since > 2 * self.lease_s
        for name in set(before) - set(now):
            log.warning("media server %s is gone", name)
        if settled:
            for name in await self._lost_servers(now):
                if name not in self._moving:
                    self._moving.add(name)
                    try:
                        await self.fail_over(name)
                    finally:
                        self._moving.discard(name)

    async def _store(self, now: dict[str, dict[str, Any]]) -> None:
        # The rows change when a state or version does, and last seen every STORE_S while present:
        # the API shows the live figures from presence, so a write a second would only load the database.
        if now.keys() == self._stored.keys() and all(
                (now[n].get("version"), now[n].get("started_at")) == self._stored[n] for n in now) \
                and time.monotonic() - self._stored_at < STORE_S:
            return
        async with self.db.session() as s:
            rows = (await s.exec(select(MediaServer))).all()
            for row in rows:
                state = now.get(row.name)
                status = "online" if state is not None else ("offline" if row.status != "unknown" else "unknown")
                changed = status != row.status
                if state is not None:
                    row.last_seen_at = utcnow()
                    row.version = str(state.get("version", ""))[:40]
                if changed or state is not None:
                    row.status = status
                    s.add(row)
            await s.commit()
        self._stored = {n: (st.get("version"), st.get("started_at")) for n, st in now.items()}
        self._stored_at = time.monotonic()

    async def _lost_servers(self, now: dict[str, dict[str, Any]]) -> list[str]:
        # Servers absent now that were seen once and still have enabled cameras assigned: theirs
        # must move. One never seen (enrolled, not started yet) is not lost: its cameras wait for it.
        async with self.db.session() as s:
            rows = (await s.exec(select(MediaServer.name).join(Camera, Camera.media_server_id == MediaServer.id)
                                 .where(Camera.enabled == True, MediaServer.last_seen_at != None)  # noqa: E711,E712
                                 .distinct())).all()
        return [name for name in rows if name not in now]

    async def _give_live_keys(self, now: dict[str, dict[str, Any]]) -> None:
        # Each start of a media server gets its direct live key, tried again each look until it took it.
        local = self.control.engine.name if self.control.engine is not None else None
        for name, state in now.items():
            start = (name, state.get("started_at"))
            if name == local or start in self._keyed:
                continue
            try:
                await self.control.send_live_key(name)
            except ValtError as err:
                log.warning("media server %s: live key not given yet (direct live view waits): %s", name, err.message)
                continue
            self._keyed = {k for k in self._keyed if k[0] != name} | {start}

    async def _arrived(self, name: str, state: dict[str, Any]) -> None:
        if not self.control.settings.media.always_on:
            return
        for camera in await self._cameras_of(name):
            if camera.id in state.get("cameras", []):
                continue
            try:
                await self.control.ingest(camera)
            except ValtError as err:
                log.warning("camera %s on %s: %s", camera.name, name, err.message)

    async def _cameras_of(self, name: str) -> list[Camera]:
        async with self.db.session() as s:
            return list((await s.exec(select(Camera).join(MediaServer, Camera.media_server_id == MediaServer.id)
                                      .where(MediaServer.name == name, Camera.enabled == True))).all())  # noqa: E712

    def least_loaded(self, pool: str, excluding: str = "") -> str | None:
        """The present server of ``pool`` with the fewest cameras (then the least CPU)."""
        candidates = [(len(st.get("cameras", [])), st.get("cpu_percent", 0.0), name)
                      for name, st in self.present.items() if name != excluding and st.get("pool", "") == pool]
        return min(candidates)[2] if candidates else None

    async def fail_over(self, lost: str) -> None:
        """Move every enabled camera of the lost server ``lost`` to others of its pool."""
        async with self.db.session() as s:
            row = (await s.exec(select(MediaServer).where(MediaServer.name == lost))).first()
        if row is None:
            return
        cameras = await self._cameras_of(lost)
        started = time.monotonic()
        for camera in cameras:
            target = self.least_loaded(row.pool, excluding=lost)
            if target is None:
                log.error("media server %s is gone and its pool %r has no other server: camera %s waits",
                          lost, row.pool, camera.name)
                return
            await self.move_camera(camera, lost, target)
            # Count the camera for the next choice at once, before its presence says so.
            self.present[target].setdefault("cameras", []).append(camera.id)
        log.warning("media server %s: %d camera(s) moved in %.1f s", lost, len(cameras), time.monotonic() - started)

    async def move_camera(self, camera: Camera, lost: str, target: str) -> None:
        """Assign ``camera`` to ``target``; a track of a running recording goes on there."""
        async with self.db.session() as s:
            target_row = (await s.exec(select(MediaServer).where(MediaServer.name == target))).first()
            cam = await s.get(Camera, camera.id)
            cam.media_server_id = target_row.id
            s.add(cam)
            await s.commit()
            await s.refresh(cam)
        log.warning("camera %s moves from %s to %s", cam.name, lost, target)
        await self.control.take_over(cam, lost, target)

    async def next_segment(self, track_id: int) -> tuple[int, float]:
        """(number of the track's next segment, recording time where its media ends)."""
        async with self.db.session() as s:
            rows = (await s.exec(select(Segment).where(Segment.track_id == track_id))).all()
        ends = [r.start_s + r.duration_s for r in rows if r.complete]
        return (max((r.seq for r in rows), default=0) + 1, max(ends, default=0.0))

    async def track_of(self, recording_id: int, camera_id: int) -> Track | None:
        """The recording's track of a camera."""
        async with self.db.session() as s:
            return (await s.exec(select(Track).where(Track.recording_id == recording_id,
                                                     Track.camera_id == camera_id))).first()
