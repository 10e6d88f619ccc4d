"""RTMP ingest: N phones publishing into one media server, against the ffmpeg CLI receiving the same pushes.

    .venv/bin/python bench/rtmp_ingest_bench.py --publishers 10 --seconds 20
    .venv/bin/python bench/rtmp_ingest_bench.py --publishers 20 --size 1920x1080 --kbps 4000

What runs, every process the real command:

- one clip encoded once (H.264 + AAC, ``--size`` at 25 fps, a keyframe every 2 s, ``--kbps``), so
  the publishers cost only a copy: ``ffmpeg -re -stream_loop -1 -i clip.flv -c copy -f flv URL``,
  as a phone's app pushes what its encoder made;
- ``valt serve`` (SQLite, local store) with N enrolled devices (``POST /api/v1/devices``) in one
  room, recorded through the API while they publish: the ``rtmp`` transport (pyrtmp), the push
  registry, PyAV's FLV demuxer and the fMP4 recorder;
- in the same window, N ffmpeg CLI receivers (``ffmpeg -listen 1 -f flv -i rtmp://... -c copy``
  into fragmented MP4, one process and port each), fed by N more publishers of the same clip.

CPU is user + system time from ``/proc`` over the window, per publisher: Valt's process, and the
ffmpeg receivers' sum; RSS per publisher is Valt's growth since before any publisher, and each
receiver's total. Publishers' own CPU counts for neither (they stand for the phones).

Then ``--latency-runs`` more devices, one at a time: from starting a publisher to the first media
fragment of the camera's live stream (``/live/{camera}/ws``), as a viewer who opens the tile at
once; and to the camera's status ``online``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.record_bench import cpu_seconds, rss_mb  # noqa: E402
from bench.relay_bench import free_port, http  # noqa: E402

PASSWORD = "bench password"
VALT = [str(REPO / ".venv" / "bin" / "valt")]


def make_clip(work: Path, size: str, kbps: int) -> Path:
    """Ten seconds of H.264 + AAC in FLV, encoded once."""
    clip = work / "clip.flv"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000", "-t", "10",
                    "-c:v", "libx264", "-preset", "veryfast", "-b:v", f"{kbps}k", "-g", "50",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", str(clip)], check=True)
    return clip


def publish(clip: Path, url: str) -> subprocess.Popen:
    """A publisher copying the clip in real time, looped."""
    return subprocess.Popen(["ffmpeg", "-loglevel", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i", str(clip),
                             "-c", "copy", "-f", "flv", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def receiver(port: int, out: Path) -> subprocess.Popen:
    """The ffmpeg CLI as an RTMP server: one publisher, stream copy into fragmented MP4."""
    return subprocess.Popen(["ffmpeg", "-loglevel", "error", "-nostdin", "-y", "-listen", "1", "-f", "flv",
                             "-i", f"rtmp://127.0.0.1:{port}/live/bench", "-c", "copy", "-f", "mp4",
                             "-movflags", "frag_keyframe+empty_moov", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait(predicate, timeout: float, what: str, step: float = 0.2):
    """Poll ``predicate`` until it is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(step)
    raise SystemExit(f"timed out waiting for {what}")


async def first_fragment(url: str, started: float, timeout: float = 30) -> float:
    """Seconds from ``started`` to the first media fragment on the live WebSocket ``url`` (retrying)."""
    import websockets

    deadline = started + timeout
    while time.monotonic() < deadline:
        try:
            async with websockets.connect(url, open_timeout=5, max_size=None) as ws:
                await asyncio.wait_for(ws.recv(), 10)  # the JSON hello
                await asyncio.wait_for(ws.recv(), 10)  # the init segment
                await asyncio.wait_for(ws.recv(), 10)  # the first media fragment
                return time.monotonic() - started
        except (OSError, asyncio.TimeoutError, websockets.ConnectionClosed, websockets.InvalidStatus):
            await asyncio.sleep(0.05)
    raise SystemExit("no live fragment")


def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="valt-rtmp-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        clip = make_clip(work, args.size, args.kbps)
        rtmp = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VALT_")}
        env.update({"VALT_DATA_DIR": str(work / "data"),
                    "VALT_LIVE__TRANSPORT_OPTIONS": json.dumps({"rtmp": {"port": rtmp, "host": "127.0.0.1"}})})
        subprocess.run(VALT + ["db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run(VALT + ["user", "add", "boss", "--admin", "--password-stdin"], input=PASSWORD + "\n",
                       text=True, env=env, check=True, capture_output=True)
        port = free_port()
        valt = subprocess.Popen(VALT + ["serve", "--port", str(port)], env=env, stdout=open(work / "valt.log", "w"),
                                stderr=subprocess.STDOUT)
        procs.append(valt)
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return http("GET", base + "/api/v1/health")[0] == 200
            except OSError:
                return False
        wait(healthy, 30, "valt serve")
        token = http("POST", base + "/api/v1/auth/login", {"username": "boss", "password": PASSWORD})[1]["token"]
        room = http("POST", base + "/api/v1/rooms", {"name": "Field"}, token)[1]
        devices = [http("POST", base + "/api/v1/devices", {"name": f"phone {i}", "room_id": room["id"]}, token)[1]
                   for i in range(args.publishers)]
        time.sleep(2)
        rss_before = rss_mb(valt.pid)

        for d in devices:
            procs.append(publish(clip, f"rtmp://127.0.0.1:{rtmp}/live/{d['stream_key']}"))
        ports = [free_port() for _ in range(args.publishers)]
        receivers = [receiver(p, work / f"ffmpeg-{i}.mp4") for i, p in enumerate(ports)]
        procs.extend(receivers)
        time.sleep(1)  # the receivers listen before their publishers dial
        for p in ports:
            procs.append(publish(clip, f"rtmp://127.0.0.1:{p}/live/bench"))

        def online() -> bool:
            cams = http("GET", base + "/api/v1/cameras", token=token)[1]
            return all(c["status"] == "online" for c in cams)
        wait(online, 60, "every device online")
        status, rec = http("POST", base + f"/api/v1/rooms/{room['id']}/record/start", None, token)
        assert status == 201, rec
        time.sleep(3)
        v0 = cpu_seconds(valt.pid)
        f0 = [cpu_seconds(r.pid) for r in receivers]
        t0 = time.monotonic()
        time.sleep(args.seconds)
        window = time.monotonic() - t0
        valt_cpu = (cpu_seconds(valt.pid) - v0) / window * 100
        ffmpeg_cpu = sum(cpu_seconds(r.pid) - a for r, a in zip(receivers, f0)) / window * 100
        valt_rss = rss_mb(valt.pid)
        ffmpeg_rss = [rss_mb(r.pid) for r in receivers]
        status, rec = http("POST", base + f"/api/v1/rooms/{room['id']}/record/stop", None, token)
        gaps = sum(len(t["gaps"]) for t in rec["tracks"])
        durations = [t["duration_s"] for t in rec["tracks"]]

        # Publish -> first live fragment, and -> online, one fresh device at a time.
        latencies, onlines = [], []
        for i in range(args.latency_runs):
            d = http("POST", base + "/api/v1/devices", {"name": f"late {i}", "room_id": room["id"]}, token)[1]
            live = http("GET", base + f"/api/v1/cameras/{d['camera_id']}/live", token=token)[1]
            url = "ws" + base[4:] + live["endpoints"]["wss"]
            started = time.monotonic()
            procs.append(publish(clip, f"rtmp://127.0.0.1:{rtmp}/live/{d['stream_key']}"))
            latencies.append(asyncio.run(first_fragment(url, started)))
            wait(lambda d=d: http("GET", base + f"/api/v1/cameras/{d['camera_id']}", token=token)[1]["status"]
                 == "online", 30, "online", step=0.05)
            onlines.append(time.monotonic() - started)
        n = args.publishers
        return {
            "publishers": n, "size": args.size, "kbps": args.kbps, "window_s": round(window, 1),
            "valt_cpu_percent_per_publisher": round(valt_cpu / n, 2),
            "ffmpeg_cpu_percent_per_publisher": round(ffmpeg_cpu / n, 2),
            "valt_rss_mb_per_publisher": round((valt_rss - rss_before) / n, 1),
            "ffmpeg_rss_mb_per_publisher": round(sum(ffmpeg_rss) / n, 1),
            "valt_rss_mb_total": round(valt_rss, 1),
            "recorded_tracks": len(durations), "recorded_gaps": gaps,
            "recorded_s_min": min(durations) if durations else None,
            "publish_to_first_live_fragment_s": [round(x, 2) for x in latencies],
            "publish_to_online_s": [round(x, 2) for x in onlines],
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--publishers", type=int, default=10)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--size", default="1280x720")
    p.add_argument("--kbps", type=int, default=2500)
    p.add_argument("--latency-runs", type=int, default=3)
    result = run(p.parse_args())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
