"""Recording benchmark: Valt against the ffmpeg CLI, side by side, on the same RTSP camera.

    .venv/bin/python bench/record_bench.py --cameras 10 --seconds 30

One GStreamer RTSP camera (1080p30, about 4 Mbps, shared encoder) serves every client on
loopback. Valt records N cameras in one process (its media engine, real storage and index);
the ffmpeg CLI records the same N streams with ``-c copy``, one process per camera, at the same
time. Both are measured over the same window (CPU from /proc, resident memory), every output
file is checked for missing frames, and then clips are cut: 30 s and 10 min, Valt's clip
builder against ``ffmpeg -ss -t -c copy``.
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

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (and its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def missing_frames(path: Path, fps: float) -> tuple[int, int]:
    """(frames present, frames missing) in a recorded file, judged by video timestamp steps."""
    import av

    with av.open(str(path)) as f:
        v = f.streams.video[0]
        times = sorted(float(p.pts * p.time_base) for p in f.demux(v) if p.pts is not None)
    missing = 0
    step = 1.0 / fps
    for a, b in zip(times, times[1:]):
        if b - a > 1.5 * step:
            missing += round((b - a) / step) - 1
    return len(times), missing


# --- the Valt side, run as its own process -----------------------------------------------------

async def bench_room(ctx, url: str, cameras: int) -> int:
    """A room with ``cameras`` RTSP cameras all reading ``url``; its id."""
    from valt_core.db.models import Camera, Room

    async with ctx.db.session() as s:
        room = Room(name="bench")
        s.add(room)
        await s.flush()
        for i in range(cameras):
            s.add(Camera(name=f"cam{i:03d}", driver="rtsp", room_id=room.id, config={"url": url}))
        await s.commit()
        return room.id


async def valt_worker(url: str, cameras: int, seconds: float, out: Path) -> None:
    from valt_core.context import ValtContext
    from valt_core.heap import freeze_startup_heap
    from valt_core.settings import load_settings

    settings = load_settings(None, {"VALT_DATA_DIR": str(out)})
    settings.media.always_on = False
    settings.media.min_free_mb = 0
    settings.media.segment_seconds = 600
    settings.storage.options["fsync"] = os.environ.get("BENCH_FSYNC", "1") == "1"
    ctx = ValtContext.build(settings)
    await ctx.db.upgrade()
    room_id = await bench_room(ctx, url, cameras)
    await ctx.media.start()
    freeze_startup_heap()  # as valt serve does once it has started
    print(json.dumps({"event": "baseline", "rss_mb": rss_mb(os.getpid())}), flush=True)
    rec = await ctx.media.start_recording(room_id, None, "bench")
    # Wait until every camera delivers, then let the parent measure a steady window.
    while not all(p.status == "online" for p in ctx.engine.pipelines.values()):
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    print(json.dumps({"event": "window_start"}), flush=True)
    await asyncio.sleep(seconds)
    print(json.dumps({"event": "window_end"}), flush=True)
    await asyncio.sleep(0.5)
    await ctx.media.stop_recording(rec.id)
    await ctx.media.stop()
    await ctx.db.dispose()
    print(json.dumps({"event": "done", "recording_id": rec.id}), flush=True)


# --- the driver ----------------------------------------------------------------------------------

def start_camera(size: str, fps: int, kbps: int) -> tuple[list[subprocess.Popen], str]:
    """The RTSP camera, plus one viewer that keeps its shared media prepared.

    GStreamer's RTSP server can abort when many clients arrive while its shared media is
    still being prepared; one early client avoids that. Neither process is measured.
    """
    proc = subprocess.Popen(["/usr/bin/python3", str(REPO / "tests/peers/rtsp_camera.py"), "--size", size,
                             "--fps", str(fps), "--gop", str(fps * 2), "--kbps", str(kbps)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        raise SystemExit(f"camera did not start: {line}")
    url = line.split()[1]
    keeper = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "quiet", "-rtsp_transport", "tcp", "-i", url,
                               "-c", "copy", "-f", "null", "-"], stdin=subprocess.DEVNULL)
    time.sleep(2)
    return [proc, keeper], url


def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="valt-bench-"))
    cam_procs, url = start_camera(args.size, args.fps, args.kbps)
    ffmpeg_procs: list[subprocess.Popen] = []
    try:
        valt = subprocess.Popen([sys.executable, __file__, "--role", "valt", "--url", url, "--cameras",
                                 str(args.cameras), "--seconds", str(args.seconds), "--out", str(work / "valt")],
                                stdout=subprocess.PIPE, text=True)
        events: dict[str, dict] = {}

        def next_event() -> dict:
            while True:
                line = valt.stdout.readline()
                if not line:
                    raise SystemExit("the Valt worker died")
                if line.startswith("{"):
                    event = json.loads(line)
                    events[event["event"]] = event
                    return event

        next_event()  # baseline
        ff_dir = work / "ffmpeg"
        ff_dir.mkdir()
        for i in range(args.cameras):
            ffmpeg_procs.append(subprocess.Popen(
                ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url, "-c", "copy",
                 "-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "1000000",
                 str(ff_dir / f"cam{i:03d}.mp4")], stdin=subprocess.DEVNULL))
        assert next_event()["event"] == "window_start"
        t0 = time.monotonic()
        valt_cpu0 = cpu_seconds(valt.pid)
        ff_cpu0 = [cpu_seconds(p.pid) for p in ffmpeg_procs]
        assert next_event()["event"] == "window_end"
        window = time.monotonic() - t0
        valt_cpu = cpu_seconds(valt.pid) - valt_cpu0
        ff_cpu = sum(cpu_seconds(p.pid) for p in ffmpeg_procs) - sum(ff_cpu0)
        valt_rss = rss_mb(valt.pid)
        ff_rss = sum(rss_mb(p.pid) for p in ffmpeg_procs)
        for p in ffmpeg_procs:
            p.terminate()  # ffmpeg finishes its file on SIGTERM
        for p in ffmpeg_procs:
            p.wait(30)
        next_event()  # done
        valt.wait(60)
    finally:
        for p in cam_procs:
            p.terminate()
        for p in ffmpeg_procs:
            if p.poll() is None:
                p.kill()

    valt_files = sorted((work / "valt" / "media").rglob("*.mp4"))
    ff_files = sorted((work / "ffmpeg").glob("*.mp4"))
    v_frames = [missing_frames(f, args.fps) for f in valt_files]
    f_frames = [missing_frames(f, args.fps) for f in ff_files]
    n = args.cameras
    result = {
        "cameras": n, "window_s": round(window, 1), "stream": f"{args.size}@{args.fps} {args.kbps} kbps",
        "valt": {"cpu_pct_per_camera": round(100 * valt_cpu / window / n, 3),
                 "rss_mb_total": round(valt_rss, 1),
                 "rss_mb_per_camera": round((valt_rss - events["baseline"]["rss_mb"]) / n, 2),
                 "frames": sum(a for a, _ in v_frames), "missing_frames": sum(b for _, b in v_frames),
                 "files": len(valt_files)},
        "ffmpeg": {"cpu_pct_per_camera": round(100 * ff_cpu / window / n, 3),
                   "rss_mb_total": round(ff_rss, 1), "rss_mb_per_camera": round(ff_rss / n, 2),
                   "frames": sum(a for a, _ in f_frames), "missing_frames": sum(b for _, b in f_frames),
                   "files": len(ff_files)},
    }
    result["cpu_ratio_valt_over_ffmpeg"] = round(result["valt"]["cpu_pct_per_camera"]
                                                 / max(1e-9, result["ffmpeg"]["cpu_pct_per_camera"]), 3)
    result["clips"] = clip_times(work, valt_files[0], args.fps)
    shutil.rmtree(work, ignore_errors=True)
    return result


def clip_times(work: Path, segment: Path, fps: int) -> dict:
    """Cut 30 s and 10 min clips from a 10-minute track made of the recorded segment repeated."""
    import av

    from valt_core.media.playback import SegmentRef, build_mp4

    with av.open(str(segment)) as f:
        seg_len = f.duration / 1e6
    copies = int(600 // seg_len) + 1
    refs = [SegmentRef(f"s{i}", i * seg_len, seg_len) for i in range(copies)]
    # The same long file for ffmpeg: the segment's packets re-timed back to back.
    long_path = work / "long.mp4"
    with av.open(str(segment)) as src, av.open(str(long_path), "w") as out:
        s = src.streams.video[0]
        o = out.add_stream_from_template(s)
        packets = [p for p in src.demux(s) if p.dts is not None]
        span = round(seg_len / s.time_base)
        for i in range(copies):
            for p in packets:
                p.dts += span if i else 0
                p.pts += span if i else 0
                p.stream = o
                out.mux(p)
    out_path = str(work / "clip.mp4")
    results = {}
    for name, start, length in (("30s", 120.0, 30.0), ("10min", 0.0, 600.0)):
        t = time.perf_counter()
        # As with the local storage backend: each segment is read from its file.
        build_mp4(refs, lambda key: str(segment), out_path, start, start + length)
        valt_s = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-ss", str(start), "-i", str(long_path),
                        "-t", str(length), "-c", "copy", out_path], check=True)
        ff_s = time.perf_counter() - t
        results[name] = {"valt_s": round(valt_s, 3), "ffmpeg_cli_s": round(ff_s, 3),
                         "ratio": round(valt_s / ff_s, 3)}
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", type=int, default=10)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--kbps", type=int, default=4000)
    p.add_argument("--role", default="driver", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "valt":
        asyncio.run(valt_worker(args.url, args.cameras, args.seconds, Path(args.out)))
        return
    if not shutil.which("ffmpeg"):
        raise SystemExit("the ffmpeg CLI is needed: apt-get install ffmpeg")
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
