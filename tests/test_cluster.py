"""Many media servers over NATS, as a site runs them: real processes, real NATS, real MariaDB.

One app server (no media server of its own), three ``valt media-server`` processes enrolled
with their own nkeys and NATS permissions, sharing one store, and a room whose cameras sit on
two of them. One journey: record; SIGKILL a media server (its camera moves within 10 s and
the recording goes on in the same recording, the outage a gap); stop NATS for 20 s (recording
goes on, the index catches up); stop; every segment indexed, ``valt verify`` passes, playback
and a clip across the failover are right. And a media server signed in with another server's
credentials cannot publish into this one's subjects.
"""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import time
import urllib.request
import uuid

import av
import pytest

from .conftest import MARIADB_HOST, MARIADB_PASSWORD, MARIADB_PORT, MARIADB_USER, _mariadb
from .peers.nats import PrivateNats, users_from_nats_config
from .test_cli import VALT, Server, _env, http, run

SMALL = {"width": 320, "height": 240, "keyframe_interval": 25}


def wait_until(check, timeout_s: float, what: str, every_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:g} s"
        time.sleep(every_s)


class MediaServerProcess:
    """A ``valt media-server --name NAME`` process with its own data directory."""

    def __init__(self, tmp_path, name: str, seed_file, common: dict[str, str], live_port: int = 0) -> None:
        self.name = name
        self.data = tmp_path / f"ms-{name}"
        self.log = tmp_path / f"ms-{name}-{uuid.uuid4().hex[:6]}.log"
        self.live_port = live_port
        # Several on one machine: each its own live port, or none (0: relayed only).
        env = {**_env(tmp_path, **common), "VALT_DATA_DIR": str(self.data), "VALT_BUS__NKEY_SEED_FILE": str(seed_file),
               "VALT_MEDIA__LIVE_PORT": str(live_port)}
        self.proc = subprocess.Popen(VALT + ["media-server", "--name", name], stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT, env=env, cwd=tmp_path)

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def frame_times(data: bytes) -> list[float]:
    """Presentation times (s) of an MP4's video frames, from its first."""
    with av.open(io.BytesIO(data)) as f:
        stream = f.streams.video[0]
        times = sorted(float(p.pts * p.time_base) for p in f.demux(stream) if p.pts is not None)
    return [t - times[0] for t in times]


def biggest_hole(times: list[float]) -> tuple[float, float]:
    """(where, how long) the longest stretch without a frame is."""
    return max(((a, b - a) for a, b in zip(times, times[1:])), key=lambda hole: hole[1])


def get_bytes(url: str, token: str) -> bytes:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


@pytest.fixture
def mariadb_url():
    name = f"valt_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_mariadb(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    yield f"mysql+aiomysql://{MARIADB_USER}:{MARIADB_PASSWORD}@{MARIADB_HOST}:{MARIADB_PORT}/{name}?charset=utf8mb4"
    asyncio.run(_mariadb(f"DROP DATABASE IF EXISTS `{name}`"))


def test_three_media_servers_failover_nats_outage_and_foreign_credentials(tmp_path, mariadb_url):
    db = {"VALT_DATABASE_URL": mariadb_url}
    assert run(tmp_path, "db", "upgrade", **db).returncode == 0
    assert run(tmp_path, "user", "add", "boss", "--admin", "--password-stdin", input="boss password\n",
               **db).returncode == 0
    for name in ("ms1", "ms2", "ms3", "siteb"):
        enrolled = run(tmp_path, "media-server", "add", name, "--seed-file", str(tmp_path / f"{name}.seed"), **db)
        assert enrolled.returncode == 0, enrolled.stderr
        assert (tmp_path / f"{name}.seed").stat().st_mode & 0o777 == 0o600
    config = run(tmp_path, "nats-config", "--app-seed-file", str(tmp_path / "app.seed"), **db)
    assert config.returncode == 0, config.stderr
    nats = PrivateNats(tmp_path / "nats", users=users_from_nats_config(config.stdout))
    shared = tmp_path / "shared-media"
    common = {"VALT_BUS__URL": nats.url, "VALT_STORAGE__OPTIONS__PATH": str(shared),
              "VALT_MEDIA__SEGMENT_SECONDS": "2"}
    servers: dict[str, MediaServerProcess] = {}
    app = None
    try:
        app = Server(tmp_path, "serve", **db, **common, VALT_MEDIA__EMBEDDED="false",
                     VALT_BUS__NKEY_SEED_FILE=str(tmp_path / "app.seed"))
        base = app.base
        token = http("POST", base + "/api/v1/auth/login", {"username": "boss", "password": "boss password"})[1]["token"]
        for name in ("ms1", "ms2", "ms3"):
            servers[name] = MediaServerProcess(tmp_path, name, tmp_path / f"{name}.seed", common)

        def listing():
            return {s["name"]: s for s in http("GET", base + "/api/v1/media-servers", token=token)[1]}

        wait_until(lambda: all(listing()[n]["status"] == "online" for n in ("ms1", "ms2", "ms3")), 30,
                   "the three media servers online")
        ids = {n: s["id"] for n, s in listing().items()}
        room = http("POST", base + "/api/v1/rooms", {"name": "Interview 1"}, token)[1]
        cams = {}
        for cam, server in (("wide", "ms1"), ("table", "ms2")):
            status, body = http("POST", base + "/api/v1/cameras", {"name": cam, "driver": "sim", "room_id": room["id"],
                                                                  "config": SMALL, "media_server_id": ids[server]},
                                token)
            assert status == 201, body
            cams[cam] = body["id"]

        def camera(name):
            return http("GET", base + f"/api/v1/cameras/{cams[name]}", token=token)[1]

        wait_until(lambda: all(camera(c)["status"] == "online" for c in cams), 30, "both cameras online")
        # Presence says what each server ingests within a second or so of the camera going online.
        wait_until(lambda: cams["wide"] in (ls := listing())["ms1"]["ingesting"] and cams["table"]
                   in ls["ms2"]["ingesting"], 10, "each server's presence lists its camera")

        status, rec = http("POST", base + f"/api/v1/rooms/{room['id']}/record/start", None, token)
        assert status == 201, rec
        time.sleep(5)
        servers["ms1"].proc.send_signal(signal.SIGKILL)
        servers["ms1"].proc.wait()
        killed = time.monotonic()
        moved = wait_until(lambda: (c := camera("wide"))["media_server_id"] != ids["ms1"] and c, 15,
                           "the lost server's camera moved")
        new_home = next(n for n, i in ids.items() if i == moved["media_server_id"])
        # ms3 had no camera: the least loaded of the pool.
        assert new_home == "ms3", moved
        wait_until(lambda: rec["id"] in listing()["ms3"]["recordings"], 15, "ms3 records the moved track")
        rec_now = http("GET", base + f"/api/v1/recordings/{rec['id']}", token=token)[1]
        took_over = time.monotonic() - killed
        assert took_over <= 10, f"the camera moved {took_over:.1f} s after the kill"
        assert rec_now["state"] == "recording", rec_now

        time.sleep(4)
        nats.stop()
        nats_down = time.monotonic()
        time.sleep(20)
        nats.start()
        down_s = time.monotonic() - nats_down
        time.sleep(6)
        status, stopped = http("POST", base + f"/api/v1/rooms/{room['id']}/record/stop", None, token)
        assert status == 200, stopped
        assert stopped["state"] == "stopped", stopped
        tracks = {t["camera_name"]: t for t in stopped["tracks"]}
        wide, table = tracks["wide"], tracks["table"]
        # The failover is a gap in the moved track, and only there; the NATS outage is no gap.
        assert len(wide["gaps"]) == 1 and table["gaps"] == [], (wide["gaps"], table["gaps"])
        gap = wide["gaps"][0]
        assert 3.0 <= gap["start_s"] <= 7.0 and gap["end_s"] - gap["start_s"] <= 11.0, gap
        assert "ms1" in gap["reason"], gap
        # ~5 s + failover + 4 s + 20 s NATS down + 6 s: the table camera recorded throughout.
        assert table["end_s"] - table["start_s"] >= 5 + took_over + 4 + down_s + 5, table
        assert wide["end_s"] >= table["end_s"] - 3, (wide, table)
        # Every segment on the store is in the index, for both tracks.
        for name, track in tracks.items():
            stored = sorted(p.name for p in shared.rglob(f"track-{track['id']}/*.mp4"))
            assert track["segments"] == len(stored) > 0, (name, track, stored)
        assert any("-ms3." in p.name for p in shared.rglob(f"track-{wide['id']}/*.mp4"))
        verify = run(tmp_path, "verify", str(rec["id"]), **db, **common)
        assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr

        # Playback of the moved track spans what both servers recorded, with the outage as its one hole.
        times = frame_times(get_bytes(base + f"/api/v1/recordings/{rec['id']}/tracks/{wide['id']}/media", token))
        assert abs(times[-1] - (wide["end_s"] - wide["start_s"])) < 1.0, (times[-1], wide)
        at, hole = biggest_hole(times)
        assert abs(hole - (gap["end_s"] - gap["start_s"])) < 1.0, (at, hole, gap)
        assert abs(at - (gap["start_s"] - wide["start_s"])) < 1.0, (at, hole, gap)
        # A clip across the failover holds the media on both sides of it.
        status, clip = http("POST", base + f"/api/v1/recordings/{rec['id']}/clips",
                            {"start_s": 1.0, "end_s": gap["end_s"] + 4.0, "track_ids": [wide["id"]]}, token)
        assert status == 202, clip
        done = wait_until(lambda: (c := http("GET", base + f"/api/v1/clips/{clip['id']}", token=token)[1])["state"]
                          in ("done", "failed") and c, 60, "the clip")
        assert done["state"] == "done", done
        times = frame_times(get_bytes(base + f"/api/v1/clips/{clip['id']}/download", token))
        # Keyframe-aligned: it starts up to a second (the keyframe interval) before 1.0 s; its last
        # frame is shown at the end less one frame (0.04 s), so a keyframe right at 1.0 s is just under.
        assert -0.1 <= times[-1] - (gap["end_s"] + 4.0 - 1.0) < 1.2, (times[-1], gap)
        at, hole = biggest_hole(times)
        assert abs(hole - (gap["end_s"] - gap["start_s"])) < 1.0, (at, hole, gap)
        assert sum(1 for t in times if t > at + hole) >= 3 * 25, "the clip holds 4 s after the failover"

        # Another server's credentials: a process calling itself ms2 with siteb's key is refused.
        servers["ms2"].stop()
        impostor = MediaServerProcess(tmp_path, "ms2", tmp_path / "siteb.seed", common)
        assert impostor.proc.wait(timeout=30) != 0
        assert "permission" in impostor.output().lower(), impostor.output()[-2000:]
        print(f"failover {took_over:.1f} s; NATS down {down_s:.1f} s; wide {wide['segments']} segments, "
              f"table {table['segments']}; gap {gap}")
    finally:
        for server in servers.values():
            server.stop()
        if app is not None:
            app.stop()
        nats.stop()
