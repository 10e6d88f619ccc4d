"""The fault suite: a full disk, a camera that goes away and comes back, a database server that
stops, a server killed mid-recording, many viewers. Real processes and real file systems."""

from __future__ import annotations

import asyncio
import errno
import os
import time

import pytest

from .peers.cameras import RtspCamera
from .test_recording import Studio, probe, small_disk, wait_for  # noqa: F401 - small_disk is a fixture


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
    env = await env_factory()
    cam = RtspCamera("--user", "cam", "--password", "right one")
    try:
        studio = Studio(env, await env.user("boss", "admin"))
        (cam_id,) = await studio.setup({"cam": {"driver": "rtsp", "config": {
            "url": cam.url, "username": "cam", "password": "wrong one"}}})
        await studio.wait_status(cam_id, "offline")
        got = await studio.camera(cam_id)
        assert got["status_reason"] == "wrong credentials", got
        # And on the Observe page's data: the rooms list the tiles are drawn from.
        rooms = await (await env.client.get("/api/v1/rooms", headers=studio.h)).get_json()
        (listed,) = [c for r in rooms for c in r["cameras"] if c["id"] == cam_id]
        assert listed["status_reason"] == "wrong credentials"
    finally:
        cam.stop()


def test_data_directory_and_files_are_private_whatever_the_umask(tmp_path):
    # The database (camera passwords, password hashes, audit log) and the media were made 0644.
    import stat
    import urllib.request

    from .test_cli import Server, http, run

    old = os.umask(0o022)  # the usual umask, which the children inherit
    try:
        assert run(tmp_path, "db", "upgrade").returncode == 0
        assert run(tmp_path, "user", "add", "boss", "--admin", "--password-stdin",
                   input="boss password\n").returncode == 0
        server = Server(tmp_path, "serve", VALT_MEDIA__SEGMENT_SECONDS="2")
    finally:
        os.umask(old)
    try:
        token = http("POST", server.base + "/api/v1/auth/login", {"username": "boss", "password": "boss password"})[1]["token"]
        room = http("POST", server.base + "/api/v1/rooms", {"name": "R"}, token)[1]
        http("POST", server.base + "/api/v1/cameras", {"name": "c", "driver": "sim", "room_id": room["id"],
                                                       "config": {"width": 320, "height": 240, "keyframe_interval": 25}}, token)
        status, rec = http("POST", server.base + f"/api/v1/rooms/{room['id']}/record/start", None, token)
        assert status == 201, rec
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
