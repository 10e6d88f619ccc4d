"""Review benchmark: a two-hour, four-camera recording in the player, and the Review page over
10,000 recordings, each against a peer run beside it.

    .venv/bin/python bench/review_bench.py [--hours 2] [--cameras 4] [--recordings 10000] [--seeks 40]

How the recording is made: ``valt serve`` records a room of N sim cameras (real recorder, real
index) for a little over two segments; the server is stopped and each track's second segment (a
whole segment, starting at a keyframe) is repeated, hard-linked under new keys with index rows
placed end to end, until the track is ``--hours`` long. The stored media are what the recorder
wrote; only the repetition is synthetic (the hash chain is not extended, so ``valt verify``
would not pass on it, which this bench does not need). Then ``valt serve`` is started again and:

- **first frame**: the player's own requests for opening the page (the recording, every
  track's segment list, the first segment of every track, in parallel as the page makes them),
  ending when each track's first frame is decoded (PyAV, the browser's own decode is not
  measured);
- **seek**: ``--seeks`` random positions; for each, every track's segment holding it is fetched
  in parallel and decoded up to the frame at that position. The peer is the ffmpeg CLI seeking
  in one whole-track MP4 on local disk (``ffmpeg -ss T -i track.mp4 -frames:v 1``), every
  track at once, at the same positions;
- **Review page**: ``--recordings`` recordings (two tracks, a marker, a gap every tenth) are
  written into the database and the first page is read through the API 30 times, plain, with
  a search (``q``) and with a date range; the peer is the plain query of one page of
  recordings (``ORDER BY started_at DESC LIMIT 50``) through sqlite3 on the same file, the
  floor any list page stands on.

Targets (issue 11): first frame and seek under 1 s, the list page under 100 ms.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SEGMENT_S = 6.0
SIM = {"width": 640, "height": 360, "fps": 25, "keyframe_interval": 50, "bitrate_kbps": 300}


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def get(base: str, path: str, token: str) -> bytes:
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def decode_until(data: bytes, at_s: float) -> float:
    """Decode a segment from its start up to the frame at ``at_s`` (segment time); its time."""
    import av

    with av.open(io.BytesIO(data)) as f:
        for frame in f.decode(video=0):
            if frame.time is not None and frame.time >= at_s - 0.02:
                return float(frame.time)
    return -1.0


def make_recording(work: Path, cameras: int, hours: float) -> tuple[int, list[int]]:
    """Record ``cameras`` sim cameras a little over two segments, then repeat segments to ``hours``."""
    from tests.test_cli import Server, http, run

    for args, stdin in ((["db", "upgrade"], None), (["user", "add", "boss", "--admin", "--password-stdin"],
                                                     "boss password\n")):
        done = run(work, *args, input=stdin)
        assert done.returncode == 0, done.stderr
    server = Server(work, "serve", VALT_MEDIA__SEGMENT_SECONDS=str(SEGMENT_S))
    try:
        token = http("POST", server.base + "/api/v1/auth/login",
                     {"username": "boss", "password": "boss password"})[1]["token"]
        room = http("POST", server.base + "/api/v1/rooms", {"name": "Interview 1"}, token)[1]
        for i in range(cameras):
            http("POST", server.base + "/api/v1/cameras",
                 {"name": f"cam{i}", "driver": "sim", "room_id": room["id"], "config": SIM}, token)
        time.sleep(4)  # the cameras connect
        status, rec = http("POST", server.base + f"/api/v1/rooms/{room['id']}/record/start", None, token)
        assert status == 201, rec
        time.sleep(2 * SEGMENT_S + 3)
        rec = http("POST", server.base + f"/api/v1/rooms/{room['id']}/record/stop", None, token)[1]
    finally:
        server.stop()
    db = sqlite3.connect(work / "data" / "valt.db")
    media = work / "data" / "media"
    track_ids = [t["id"] for t in rec["tracks"]]
    for track_id in track_ids:
        rows = db.execute("SELECT seq, key, start_s, duration_s, bytes, sha256, created_at FROM segments "
                          "WHERE track_id = ? AND complete = 1 ORDER BY seq", (track_id,)).fetchall()
        assert len(rows) >= 2, f"track {track_id} has {len(rows)} finished segments"
        seq, key, start, duration, size, sha, created = rows[1]
        db.execute("DELETE FROM segments WHERE track_id = ? AND seq > ?", (track_id, seq))
        end, n = start + duration, seq
        while end < hours * 3600:
            n += 1
            new_key = key.rsplit("/", 1)[0] + f"/{n:06d}.mp4"
            (media / new_key).unlink(missing_ok=True)  # a later segment the recorder wrote: replaced
            os.link(media / key, media / new_key)
            db.execute("INSERT INTO segments (track_id, seq, key, start_s, duration_s, bytes, sha256, chain_hash, "
                       "complete, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, '', 1, ?)",
                       (track_id, n, new_key, end, duration, size, sha, created))
            end += duration
    db.commit()
    db.close()
    return rec["id"], track_ids


def seed_recordings(db_path: Path, count: int) -> None:
    """``count`` recordings over a year, two tracks each, a marker on each, a gap on every tenth."""
    db = sqlite3.connect(db_path)
    room_id = db.execute("SELECT id FROM rooms LIMIT 1").fetchone()[0]
    author = db.execute("SELECT id FROM users LIMIT 1").fetchone()[0]
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    words = ["intake", "follow-up", "review", "interview", "assessment", "session"]
    for i in range(count):
        start = t0 + timedelta(minutes=50 * i)
        stamp = start.strftime("%Y-%m-%d %H:%M:%S.%f")
        cur = db.execute("INSERT INTO recordings (room_id, author_id, name, state, started_at, stopped_at, "
                         "legal_hold, notes) VALUES (?, ?, ?, 'stopped', ?, ?, 0, '')",
                         (room_id, author, f"{words[i % len(words)]} {i}", stamp, stamp))
        rec_id = cur.lastrowid
        for cam in ("wide", "close"):
            track = db.execute("INSERT INTO tracks (recording_id, camera_name, state, video_codec, audio_codec, "
                               "width, height, storage_prefix) VALUES (?, ?, 'stopped', 'h264', '', 640, 360, '')",
                               (rec_id, cam)).lastrowid
            for seq in range(3):
                db.execute("INSERT INTO segments (track_id, seq, key, start_s, duration_s, bytes, sha256, "
                           "chain_hash, complete, created_at) VALUES (?, ?, ?, ?, 60, 1000, '', '', 1, ?)",
                           (track, seq, f"recordings/{rec_id}/track-{track}/{seq:06d}.mp4", 60.0 * seq, stamp))
            if i % 10 == 0:
                db.execute("INSERT INTO gaps (track_id, start_s, end_s, reason) VALUES (?, 30, 35, 'camera offline')",
                           (track,))
        db.execute("INSERT INTO markers (recording_id, author_id, time_s, event, color, created_at) "
                   "VALUES (?, ?, 12, ?, 'blue', ?)", (rec_id, author, f"door opened {i}", stamp))
    db.commit()
    db.close()


def whole_track(base: str, token: str, rec_id: int, track_id: int, out: Path) -> None:
    """The track as one MP4 on local disk (Valt's playback file), for the ffmpeg CLI to seek in."""
    out.write_bytes(get(base, f"/api/v1/recordings/{rec_id}/tracks/{track_id}/media", token))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--recordings", type=int, default=10_000)
    parser.add_argument("--seeks", type=int, default=40)
    args = parser.parse_args()
    from tests.test_cli import Server, http

    with tempfile.TemporaryDirectory(prefix="valt-review-bench-") as tmp:
        work = Path(tmp)
        print(f"recording {args.cameras} sim cameras ({SIM['width']}x{SIM['height']}) ...", flush=True)
        rec_id, track_ids = make_recording(work, args.cameras, args.hours)
        server = Server(work, "serve")
        try:
            token = http("POST", server.base + "/api/v1/auth/login",
                         {"username": "boss", "password": "boss password"})[1]["token"]
            pool = ThreadPoolExecutor(max_workers=2 * args.cameras)

            def open_page() -> tuple[float, dict[int, list[dict]]]:
                t0 = time.perf_counter()
                get(server.base, f"/api/v1/recordings/{rec_id}", token)
                lists = list(pool.map(lambda t: get(server.base, f"/api/v1/recordings/{rec_id}/tracks/{t}/segments",
                                                    token), track_ids))
                import json

                segs = {t: json.loads(body)["segments"] for t, body in zip(track_ids, lists)}
                firsts = list(pool.map(lambda t: get(server.base, segs[t][0]["url"], token), track_ids))
                list(pool.map(lambda data: decode_until(data, 0.0), firsts))
                return time.perf_counter() - t0, segs

            first_frames = []
            for _ in range(5):
                took, segs = open_page()
                first_frames.append(took)
            length = min(s[-1]["start_s"] + s[-1]["duration_s"] for s in segs.values())
            print(f"recording: {length / 3600:.2f} h x {len(track_ids)} tracks, "
                  f"{sum(len(s) for s in segs.values())} segments")

            rng = random.Random(11)
            positions = [rng.uniform(0, length - 1) for _ in range(args.seeks)]

            def seek(at: float) -> float:
                t0 = time.perf_counter()

                def one(track_id: int) -> float:
                    seg = next(s for s in segs[track_id] if s["start_s"] <= at < s["start_s"] + s["duration_s"])
                    return decode_until(get(server.base, seg["url"], token), at - seg["start_s"])

                list(pool.map(one, track_ids))
                return time.perf_counter() - t0

            valt_seeks = [seek(at) for at in positions]

            print("building whole-track MP4s for the ffmpeg CLI ...", flush=True)
            files = []
            for track_id in track_ids:
                out = work / f"track-{track_id}.mp4"
                whole_track(server.base, token, rec_id, track_id, out)
                files.append(out)

            def ffmpeg_seek(at: float) -> float:
                t0 = time.perf_counter()
                procs = [subprocess.Popen(["ffmpeg", "-v", "error", "-ss", f"{at:.3f}", "-i", str(f), "-frames:v", "1",
                                           "-f", "null", "-"]) for f in files]
                for p in procs:
                    p.wait()
                return time.perf_counter() - t0

            ffmpeg_seeks = [ffmpeg_seek(at) for at in positions]

            print(f"seeding {args.recordings} recordings ...", flush=True)
            server.stop()
            seed_recordings(work / "data" / "valt.db", args.recordings)
            server = Server(work, "serve")
            token = http("POST", server.base + "/api/v1/auth/login",
                         {"username": "boss", "password": "boss password"})[1]["token"]

            def timed(path: str, runs: int = 30) -> list[float]:
                get(server.base, path, token)  # warm
                out = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    get(server.base, path, token)
                    out.append(time.perf_counter() - t0)
                return out

            plain = timed("/api/v1/recordings")
            search = timed("/api/v1/recordings?q=door+4711")
            dated = timed("/api/v1/recordings?from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z")
            db = sqlite3.connect(work / "data" / "valt.db")
            floor = []
            for _ in range(30):
                t0 = time.perf_counter()
                db.execute("SELECT * FROM recordings ORDER BY started_at DESC, id DESC LIMIT 50").fetchall()
                floor.append(time.perf_counter() - t0)
            db.close()
        finally:
            server.stop()

    ms = 1000
    print()
    print(f"first frame, {len(track_ids)} tracks: p50 {statistics.median(first_frames) * ms:.0f} ms, "
          f"max {max(first_frames) * ms:.0f} ms (target < 1000 ms)")
    print(f"seek, {len(track_ids)} tracks ({args.seeks} seeks): Valt p50 {pct(valt_seeks, 50) * ms:.0f} ms, "
          f"p99 {pct(valt_seeks, 99) * ms:.0f} ms; ffmpeg CLI p50 {pct(ffmpeg_seeks, 50) * ms:.0f} ms, "
          f"p99 {pct(ffmpeg_seeks, 99) * ms:.0f} ms; ratio p50 "
          f"{pct(valt_seeks, 50) / pct(ffmpeg_seeks, 50):.2f}x (target < 1000 ms)")
    for name, values in (("first page", plain), ("search q=", search), ("date range", dated)):
        print(f"review list over {args.recordings} recordings, {name}: p50 {statistics.median(values) * ms:.1f} ms, "
              f"p99 {pct(values, 99) * ms:.1f} ms (target < 100 ms)")
    print(f"  floor (sqlite3, one page of rows): p50 {statistics.median(floor) * ms:.2f} ms; "
          f"ratio {statistics.median(plain) / statistics.median(floor):.0f}x")


if __name__ == "__main__":

    main()
