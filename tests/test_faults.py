"""The fault suite: a full disk, a camera that goes away and comes back, a database server that
stops, a server killed mid-recording, many viewers. Real processes and real file systems."""

from __future__ import annotations

import asyncio
import errno
import os
import time

import pytest

from .peers.cameras import RtspCamera
from .test_recording import Studio, probe, wait_for


def fill(directory, chunk: int = 1 << 20) -> int:
    """Write a file into ``directory`` until its file system is full; the bytes written."""
    written = 0
    with open(directory / "filler.bin", "wb", buffering=0) as f:
        block = b"\0" * chunk
        while True:
            try:
                written += f.write(block)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
                if chunk == 4096:
                    return written
                chunk = 4096
                block = block[:chunk]


async def test_disk_full_without_floor_keeps_flushed_media(env_factory, small_disk):
    env = await env_factory(data_dir=small_disk, min_free_mb=0, disk_check_s=0.3, segment_seconds=60)
    studio = Studio(env, await env.user("boss", "admin"))
    sim = {"driver": "sim", "config": {"width": 320, "height": 240, "keyframe_interval": 25}}
    await studio.setup({"a": sim, "b": sim})
    rec = await studio.record("start", expect=201)
    await asyncio.sleep(4)
    fill(small_disk)

    async def ended():
        got = await studio.recording(rec["id"])
        return got if got["state"] != "recording" else None
    after = await wait_for(ended, 15, "the recording to end after the disk filled")
    # The engine stopped it, and says why; each track failed, keeping what it had flushed.
    assert after["state"] == "stopped", after
    assert "storage" in after["notes"] and "No space left" in after["notes"], after["notes"]
    assert len(after["tracks"]) == 2
    for track in after["tracks"]:
        assert track["state"] == "failed", track
        assert track["segments"] >= 1 and track["duration_s"] >= 2.0, track
    stop = await env.client.post(f"/api/v1/rooms/{studio.room_id}/record/stop", headers=studio.h)
    assert stop.status_code == 404  # nothing is running any more: not a 500
    again = await env.client.post(f"/api/v1/rooms/{studio.room_id}/record/start", headers=studio.h, json={})
    assert again.status_code == 507 and "storage is full" in (await again.get_json())["message"]
    # A full disk is a clear answer, never an internal error: 507 for storage, 503 for the
    # database (SQLite lives on the same full disk; MariaDB does not and keeps working).
    login = await env.client.post("/api/v1/auth/login", json={"username": "boss", "password": "correct horse 1"})
    room = await env.client.post("/api/v1/rooms", json={"name": "Another"}, headers=studio.h)
    for r in (login, room):
        assert r.status_code in (200, 201, 503, 507), (r.status_code, await r.get_data(as_text=True))
        if r.status_code >= 500:
            assert (await r.get_json())["message"]
    health = await env.client.get("/api/v1/health")
    body = await health.get_json()
    assert health.status_code == 503 and body["storage"]["status"] == "error", body
    assert body["storage"]["message"]
    # Nothing flushed was deleted: every stored segment file is indexed and verifies.
    report = await env.ctx.media.verify(rec["id"])
    assert report.ok, report.problems
    assert not list(small_disk.rglob("*.partial"))
    # Once space is freed, what was kept plays: the seconds before the disk filled.
    (small_disk / "filler.bin").unlink()
    for track in after["tracks"]:
        seen = probe(await (await studio.media(rec["id"], track["id"])).get_data())
        assert seen["frames"] >= 25 * 2, seen["frames"]
        assert seen["duration"] == pytest.approx(track["duration_s"], abs=0.3)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_camera_that_comes_back_resumes_recording_within_a_second(env_factory):
    # Default reconnect_max_s (30 s): the backoff must not apply to a camera being recorded.
    env = await env_factory(segment_seconds=60)
    cam = RtspCamera("--gop", "25")
    try:
        studio = Studio(env, await env.user("boss", "admin"))
        (cam_id,) = await studio.setup({"cam": {"driver": "rtsp", "config": {"url": cam.url}}})
        await studio.wait_status(cam_id, "online")
        rec = await studio.record("start", expect=201)
        await asyncio.sleep(3)
        killed = time.monotonic()
        cam.kill()
        await studio.wait_status(cam_id, "offline", timeout=5)
        await asyncio.sleep(5 - (time.monotonic() - killed))
        during = await studio.camera(cam_id)
        assert during["status_reason"] == "unreachable", during  # connection refused, in plain words
        cam.start()  # same port
        outage = time.monotonic() - killed
        await studio.wait_status(cam_id, "online", timeout=10)
        assert (await studio.camera(cam_id))["status_reason"] == ""
        await asyncio.sleep(3)
        rec = await studio.record("stop")
    finally:
        cam.stop()
    (gap,) = rec["tracks"][0]["gaps"]
    length = gap["end_s"] - gap["start_s"]
    print(f"outage {outage:.2f} s, gap {length:.2f} s, excess {length - outage:.2f} s")
    assert length <= outage + 1.5, (outage, gap)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_camera_status_carries_the_reason_of_its_last_failure(env_factory):
    env = await env_factory(no_frames_after_s=2.0)
    cam = RtspCamera("--user", "cam", "--password", "right one")
    hung = RtspCamera()
    try:
        studio = Studio(env, await env.user("boss", "admin"))
        cam_id, hung_id = await studio.setup({
            "cam": {"driver": "rtsp", "config": {"url": cam.url, "username": "cam", "password": "wrong one"}},
            "hung": {"driver": "rtsp", "config": {"url": hung.url}}})
        await studio.wait_status(cam_id, "offline")
        got = await studio.camera(cam_id)
        assert got["status_reason"] == "wrong credentials", got
        # And on the Observe page's data: the rooms list the tiles are drawn from.
        rooms = await (await env.client.get("/api/v1/rooms", headers=studio.h)).get_json()
        (listed,) = [c for r in rooms for c in r["cameras"] if c["id"] == cam_id]
        assert listed["status_reason"] == "wrong credentials"
        await studio.wait_status(hung_id, "online")
        hung.freeze()  # connected, nothing arrives
        await studio.wait_status(hung_id, "no_frames", timeout=10)
        assert (await studio.camera(hung_id))["status_reason"] == "no frames"
    finally:
        cam.stop()
        hung.stop()


def test_data_directory_and_files_are_private_whatever_the_umask(tmp_path):
    # The database (camera passwords, password hashes, audit log) and the media were made 0644.
    import stat
    import urllib.request

    from .test_cli import Server, http, record_one_sim_camera, run

    old = os.umask(0o022)  # the usual umask, which the children inherit
    try:
        assert run(tmp_path, "db", "upgrade").returncode == 0
        assert run(tmp_path, "user", "add", "boss", "--admin", "--password-stdin",
                   input="boss password\n").returncode == 0
        server = Server(tmp_path, "serve", VALT_MEDIA__SEGMENT_SECONDS="2")
    finally:
        os.umask(old)
    try:
        token, room, rec = record_one_sim_camera(server)
        time.sleep(3)
        rec = http("POST", server.base + f"/api/v1/rooms/{room['id']}/record/stop", None, token)[1]
        req = urllib.request.Request(  # builds a playback file under DATA_DIR/cache
            server.base + f"/api/v1/recordings/{rec['id']}/tracks/{rec['tracks'][0]['id']}/media",
            headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert len(r.read()) > 1000
        data = tmp_path / "data"
        seen = {p.relative_to(data).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in data.rglob("*")}
    finally:
        server.stop()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = {k: m for k, m in seen.items() if not (data / k).is_dir()}
    dirs = {k: m for k, m in seen.items() if (data / k).is_dir()}
    # What a site must protect is among them: the database and its WAL, keys, segments, cache.
    assert {"valt.db", "valt.db-wal", "secret_key"} <= set(files), sorted(files)
    assert any(k.startswith("media/recordings/") and k.endswith(".mp4") for k in files), sorted(files)
    assert any(k.startswith("cache/") for k in files), sorted(files)
    assert {k: oct(m) for k, m in files.items() if m != 0o600} == {}
    assert {k: oct(m) for k, m in dirs.items() if m != 0o700} == {}


def test_database_server_stopped_mid_recording_media_goes_on_and_the_index_catches_up(tmp_path):
    # A private MariaDB (the shared one on 3306 serves other tests), killed mid-recording.
    from .peers.mariadb import PrivateMariaDB
    from .test_cli import Server, http, run

    mariadb = PrivateMariaDB(tmp_path / "mariadb")
    db = {"VALT_DATABASE_URL": mariadb.url, "VALT_MEDIA__SEGMENT_SECONDS": "2"}
    server = None
    door = RtspCamera()  # a camera that dies while the database is down
    try:
        assert run(tmp_path, "db", "upgrade", **db).returncode == 0
        assert run(tmp_path, "user", "add", "boss", "--admin", "--password-stdin",
                   input="boss password\n", **db).returncode == 0
        server = Server(tmp_path, "serve", **db)
        base = server.base

        def login():
            return http("POST", base + "/api/v1/auth/login", {"username": "boss", "password": "boss password"})

        token = login()[1]["token"]
        room = http("POST", base + "/api/v1/rooms", {"name": "R"}, token)[1]
        small = {"width": 320, "height": 240, "keyframe_interval": 25}
        http("POST", base + "/api/v1/cameras", {"name": "c", "driver": "sim", "room_id": room["id"], "config": small},
             token)
        door_id = http("POST", base + "/api/v1/cameras", {"name": "door", "driver": "rtsp",
                                                          "config": {"url": door.url}}, token)[1]["id"]
        status, rec = http("POST", base + f"/api/v1/rooms/{room['id']}/record/start", None, token)
        assert status == 201, rec
        time.sleep(3)
        assert http("GET", base + f"/api/v1/cameras/{door_id}", token=token)[1]["status"] == "online"
        media = tmp_path / "data" / "media"
        mariadb.kill()
        down_at = time.monotonic()
        time.sleep(1)
        # While it is down: clear 503 answers, never 500, and health says what is wrong.
        for status, body in (http("GET", base + f"/api/v1/recordings/{rec['id']}", token=token), login(),
                             http("POST", base + f"/api/v1/rooms/{room['id']}/record/stop", None, token)):
            assert status == 503, (status, body)
            assert "database" in body["message"]
        status, health = http("GET", base + "/api/v1/health")
        assert status == 503 and health["database"]["status"] == "error", health
        files_before = len(list(media.rglob("*.mp4*")))
        door.kill()
        time.sleep(6)
        # The media went on being written meanwhile: new 2 s segments appeared on disk.
        assert len(list(media.rglob("*.mp4*"))) >= files_before + 2
        outage = time.monotonic() - down_at
        mariadb.start()
        back_at = time.monotonic()
        while http("GET", base + "/api/v1/health")[0] != 200:
            assert time.monotonic() < back_at + 20, "Valt did not recover after the database came back"
            time.sleep(0.2)
        healthy_after = time.monotonic() - back_at
        token = login()[1]["token"]  # the session of before may or may not have been kept
        time.sleep(2)
        # The camera lost while the database was down is stored as lost, with its reason.
        door_now = http("GET", base + f"/api/v1/cameras/{door_id}", token=token)[1]
        assert (door_now["status"], door_now["status_reason"]) == ("offline", "unreachable"), door_now
        status, rec = http("POST", base + f"/api/v1/rooms/{room['id']}/record/stop", None, token)
        assert status == 200, rec
        (track,) = rec["tracks"]
        # The index caught up: the segments written during the outage are there, no hole.
        assert track["gaps"] == [], track
        assert track["end_s"] - track["start_s"] >= 3 + outage + 1, (outage, track)
        stored = sorted(p.name for p in media.rglob("*.mp4"))
        assert track["segments"] == len(stored), (track, stored)
        print(f"database down {outage:.1f} s, healthy {healthy_after:.1f} s after its return; recorded "
              f"{track['end_s'] - track['start_s']:.1f} s in {track['segments']} segments")
    finally:
        if server is not None:
            server.stop()
        mariadb.stop()
        door.stop()
    mariadb.start()  # the whole chain verifies, the outage's segments included
    try:
        verify = run(tmp_path, "verify", str(rec["id"]), **db)
    finally:
        mariadb.stop()
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr


def _process_figures(pid: int) -> tuple[int, int, float]:
    """(open file descriptors, of which sockets, resident memory in MiB) of a process."""
    fds = os.listdir(f"/proc/{pid}/fd")
    sockets = 0
    for fd in fds:
        try:
            sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            continue  # closed while we looked
    with open(f"/proc/{pid}/status") as f:
        rss_kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return len(fds), sockets, rss_kib / 1024


#: What viewers that left may leave behind. Sockets: none (2 for one in the middle of closing).
#: Other descriptors: the database pool grows to its size under 200 simultaneous openings (SQLite
#: keeps a file descriptor per pooled connection), once; a second round must not add more.
#: Memory: the first round raises the allocator's high-water mark (CPython keeps freed arenas);
#: a second round must come back within a few MiB of the first.
SOCKET_TOLERANCE = 2
FD_TOLERANCE = 2
FIRST_ROUND_RSS_MIB = 32.0
ROUND_RSS_MIB = 8.0


def test_200_websocket_viewers_opened_and_closed_leave_fds_and_memory_at_baseline(tmp_path):
    import websockets

    from .test_cli import Server, http

    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD="viewers demo pw")
    pid = server.proc.pid
    try:
        token = http("POST", server.base + "/api/v1/auth/login",
                     {"username": "admin", "password": "viewers demo pw"})[1]["token"]
        cam_id = http("GET", server.base + "/api/v1/cameras", token=token)[1][0]["id"]

        def live_url() -> str:
            path = http("GET", server.base + f"/api/v1/cameras/{cam_id}/live", token=token)[1]["endpoints"]["wss"]
            return f"ws://127.0.0.1:{server.port}{path}"

        async def watch(ws, messages: int) -> None:
            for _ in range(messages):
                await ws.recv()

        async def settled(baseline_sockets: int) -> tuple[int, int, float]:
            # The server notices the closes within a moment; then give it two more seconds.
            for _ in range(50):
                if _process_figures(pid)[1] <= baseline_sockets + SOCKET_TOLERANCE:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)
            return _process_figures(pid)

        async def round_of_200() -> tuple[int, int, float]:
            url = live_url()
            viewers = await asyncio.gather(*(websockets.connect(url, max_size=None, open_timeout=60)
                                             for _ in range(200)))
            await asyncio.gather(*(watch(v, 12) for v in viewers))  # init + video, for each
            peak = _process_figures(pid)
            await asyncio.gather(*(v.close() for v in viewers))
            return peak

        async def scenario():
            # One viewer stays throughout, so the camera's live stream runs in every measurement:
            # what is compared is the cost of the 200, not the stream's start-up.
            async with websockets.connect(live_url(), max_size=None) as keeper:
                await watch(keeper, 30)
                reader = asyncio.create_task(watch(keeper, 10**9))
                await asyncio.sleep(2)
                figures = [_process_figures(pid)]
                for _ in range(2):
                    figures.append(await round_of_200())
                    figures.append(await settled(figures[0][1]))
                assert not reader.done(), "the viewer that stayed was cut off"
                reader.cancel()
                return figures

        baseline, peak1, after1, peak2, after2 = asyncio.run(scenario())
    finally:
        server.stop()
    for name, (fds, sockets, rss) in zip(("baseline", "peak 1", "after 1", "peak 2", "after 2"),
                                         (baseline, peak1, after1, peak2, after2)):
        print(f"{name}: {fds} fds ({sockets} sockets), RSS {rss:.1f} MiB")
    assert peak1[1] >= baseline[1] + 200 and peak2[1] >= baseline[1] + 200  # really open at once
    for after in (after1, after2):
        assert after[1] <= baseline[1] + SOCKET_TOLERANCE, (baseline, after)
    assert after2[0] <= after1[0] + FD_TOLERANCE, (after1, after2)
    assert after1[2] <= baseline[2] + FIRST_ROUND_RSS_MIB, (baseline, after1)
    assert after2[2] <= after1[2] + ROUND_RSS_MIB, (after1, after2)


def test_sigkill_while_the_database_is_down_keeps_the_media_written_meanwhile(tmp_path):
    # Segments started and finished while the database was down have no index rows; the next
    # start finds them by their keys and indexes them instead of deleting them as unknown.
    import signal

    from .peers.mariadb import PrivateMariaDB
    from .test_cli import Server, http, record_one_sim_camera, run

    mariadb = PrivateMariaDB(tmp_path / "mariadb")
    db = {"VALT_DATABASE_URL": mariadb.url, "VALT_MEDIA__SEGMENT_SECONDS": "2"}
    try:
        assert run(tmp_path, "db", "upgrade", **db).returncode == 0
        assert run(tmp_path, "user", "add", "boss", "--admin", "--password-stdin",
                   input="boss password\n", **db).returncode == 0
        server = Server(tmp_path, "serve", **db)
        login = {"username": "boss", "password": "boss password"}
        token, room, rec = record_one_sim_camera(server)
        time.sleep(3)
        mariadb.kill()
        time.sleep(5)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        mariadb.start()
        server = Server(tmp_path, "serve", **db)
        try:
            token = http("POST", server.base + "/api/v1/auth/login", login)[1]["token"]
            got = http("GET", server.base + f"/api/v1/recordings/{rec['id']}", token=token)[1]
        finally:
            server.stop()
        assert got["state"] == "interrupted", got
        (track,) = got["tracks"]
        # Killed about 8 s in: at most the fragment being written (1 s) and a keyframe are lost.
        assert track["end_s"] - track["start_s"] >= 6.0, track
        stored = sorted(p.name for p in (tmp_path / "data" / "media").rglob("*.mp4*"))
        # 2 s segments and the database down from 3 s: the third began and ended while it was down
        # (on a busy machine the fourth may not have begun by the kill).
        assert track["segments"] == len(stored) >= 3, (track, stored)
        verify = run(tmp_path, "verify", str(rec["id"]), **db)
    finally:
        mariadb.stop()
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr


async def test_camera_in_use_is_tried_every_half_second_whatever_the_backoff():
    # A port that accepts and hangs up at once: every connection attempt is counted.
    import socket

    from valt_camera_rtsp.config import RtspCameraConfig
    from valt_camera_rtsp.driver import RtspCamera as RtspDriver

    from valt_core.media.pipeline import CameraPipeline

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    attempts: list[float] = []

    async def count() -> None:
        while True:
            conn, _ = await loop.sock_accept(listener)
            attempts.append(time.monotonic())
            conn.close()

    counter = asyncio.create_task(count())
    url = f"rtsp://127.0.0.1:{listener.getsockname()[1]}/cam"
    pipe = CameraPipeline(RtspDriver(RtspCameraConfig(url=url)), reconnect_max_s=30)

    class Recorder:  # stands for a recording: a sink means "in use"
        def on_connected(self, connected):
            pass

        def on_packet(self, mp):
            pass

    try:
        await pipe.start()
        await asyncio.sleep(7)  # idle: 1 + 2 + 4 s of backoff, three or four attempts
        idle = len(attempts)
        assert idle <= 4, attempts
        pipe.add_sink(Recorder())
        start = len(attempts)
        await asyncio.sleep(3)  # in use: the 8 s backoff in force no longer applies
        busy = attempts[start:]
        assert len(busy) >= 5, busy
        assert max(b - a for a, b in zip(busy, busy[1:])) < 0.8, busy
        assert pipe.status == "offline" and pipe.status_reason  # the driver's message, at least
    finally:
        await pipe.stop()
        counter.cancel()
        listener.close()


def test_failure_reasons_in_plain_words():
    import av

    from valt_core.errors import CameraAuthFailed, CameraUnreachable
    from valt_core.media.pipeline import failure_reason

    assert failure_reason(CameraAuthFailed("401")) == "wrong credentials"
    assert failure_reason(av.error.HTTPUnauthorizedError(825242872, "Server returned 401 Unauthorized")) == \
        "wrong credentials"
    assert failure_reason(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")) == "unreachable"
    assert failure_reason(OSError(errno.EHOSTUNREACH, "No route to host")) == "unreachable"
    assert failure_reason(TimeoutError("timed out")) == "unreachable"
    assert failure_reason(CameraUnreachable("no answer")) == "unreachable"
    other = failure_reason(RuntimeError("could not open rtsp://admin:s3cret@10.0.0.9/stream1"))
    assert other.startswith("RuntimeError: ") and "s3cret" not in other
