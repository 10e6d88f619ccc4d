"""Recording to each store side by side: ``local``, an ``s3`` bucket, and the ffmpeg CLI.

    .venv/bin/python bench/storage_record_bench.py --cameras 20 --seconds 30

One GStreamer RTSP camera (shared encoder) serves every client on loopback. At the same time,
one Valt process records N cameras to its ``local`` store, a second records the same N
cameras to an S3 bucket (moto in server mode, as in the tests; a real S3 adds its network),
and the ffmpeg CLI records the N streams with ``-c copy``, one process per camera. All three
are measured over the same window: CPU from /proc, resident memory. Every output is checked
for missing frames; the frame counts differ because each side records from its own start to
its own stop, a second or two apart.

Upload lag, for ``s3``: for each segment, the time from the recorder closing it (every
fragment was flushed to the spool by then) to the object being whole in the bucket, as a
``HEAD`` of it sees it (polled every 50 ms). A fragment inside a segment is in the bucket once
the multipart part holding it is uploaded, which happens every ``part_size_mb`` of a camera's
bytes; the close-to-bucket time is what bounds how long the newest media lives only in the
spool. moto's own CPU is reported apart and not counted as Valt's.
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
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.record_bench import bench_room, cpu_seconds, missing_frames, rss_mb, start_camera  # noqa: E402

ACCESS_KEY, SECRET_KEY = "bench-access-key", "bench-secret-key"


# --- the Valt side, one process per store ---------------------------------------------------

async def valt_worker(url: str, cameras: int, seconds: float, out: Path, store: str, endpoint: str,
                      bucket: str, segment_s: float) -> None:
    from valt_core.context import ValtContext
    from valt_core.heap import freeze_startup_heap
    from valt_core.settings import load_settings

    settings = load_settings(None, {"VALT_DATA_DIR": str(out)})
    settings.media.always_on = False
    settings.media.min_free_mb = 0
    settings.media.segment_seconds = segment_s
    if store == "s3":
        settings.storage.driver = "s3"
        settings.storage.options = {"bucket": bucket, "endpoint_url": endpoint, "credentials": "environment",
                                    "part_size_mb": 5}
    ctx = ValtContext.build(settings)
    await ctx.db.upgrade()
    closed: dict[str, float] = {}
    stored: dict[str, float] = {}
    if store == "s3":
        watch_uploads(ctx.storage, closed, stored, endpoint, bucket)
    room_id = await bench_room(ctx, url, cameras)
    await ctx.media.start()
    freeze_startup_heap()
    print(json.dumps({"event": "baseline", "rss_mb": rss_mb(os.getpid())}), flush=True)
    rec = await ctx.media.start_recording(room_id, None, "bench")
    while not all(p.status == "online" for p in ctx.engine.pipelines.values()):
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    print(json.dumps({"event": "window_start"}), flush=True)
    await asyncio.sleep(seconds)
    print(json.dumps({"event": "window_end"}), flush=True)
    await asyncio.sleep(0.5)
    await ctx.media.stop_recording(rec.id)
    await ctx.media.stop()
    deadline = time.monotonic() + 60
    while store == "s3" and set(closed) - set(stored) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    lags = sorted(stored[k] - closed[k] for k in closed if k in stored)
    await ctx.close()
    print(json.dumps({"event": "done", "recording_id": rec.id, "lags_s": lags,
                      "not_stored": len(set(closed) - set(stored))}), flush=True)


def watch_uploads(storage, closed: dict[str, float], stored: dict[str, float], endpoint: str, bucket: str) -> None:
    """Note when each writer is closed, and when a HEAD first finds its whole object."""
    import boto3

    opened = storage.open_writer
    prefix = getattr(storage.config, "prefix", "")

    async def open_writer(key: str):
        writer = await opened(key)
        close = writer.close

        async def timed_close() -> int:
            closed[key] = time.monotonic()
            return await close()

        writer.close = timed_close
        return writer

    storage.open_writer = open_writer
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY)

    def poll() -> None:
        while True:
            for key in list(closed):
                if key in stored:
                    continue
                name = prefix + key
                try:
                    client.head_object(Bucket=bucket, Key=name)
                except Exception:  # noqa: BLE001 - not there yet
                    continue
                stored[key] = time.monotonic()
            time.sleep(0.05)

    threading.Thread(target=poll, daemon=True).start()


# --- the driver ----------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def run(args: argparse.Namespace) -> dict:
    import boto3

    from tests.peers.s3 import MotoS3

    work = Path(tempfile.mkdtemp(prefix="valt-storage-bench-"))
    moto = MotoS3(work / "moto")
    bucket = "valt-bench"
    boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                 aws_secret_access_key=SECRET_KEY).create_bucket(Bucket=bucket)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    cam_procs, url = start_camera(args.size, args.fps, args.kbps)
    workers: dict[str, subprocess.Popen] = {}
    events: dict[str, dict[str, dict]] = {"local": {}, "s3": {}}
    ffmpeg_procs: list[subprocess.Popen] = []

    def next_event(store: str) -> dict:
        while True:
            line = workers[store].stdout.readline()
            if not line:
                raise SystemExit(f"the Valt worker for {store} died")
            if line.startswith("{"):
                event = json.loads(line)
                events[store][event["event"]] = event
                return event

    try:
        for store in ("local", "s3"):
            workers[store] = subprocess.Popen(
                [sys.executable, __file__, "--role", "valt", "--store", store, "--url", url, "--cameras",
                 str(args.cameras), "--seconds", str(args.seconds), "--out", str(work / store),
                 "--endpoint", moto.url, "--bucket", bucket, "--segment-seconds", str(args.segment_seconds)],
                stdout=subprocess.PIPE, text=True, env=env)
        for store in workers:
            assert next_event(store)["event"] == "baseline"
        ff_dir = work / "ffmpeg"
        ff_dir.mkdir()
        for i in range(args.cameras):
            ffmpeg_procs.append(subprocess.Popen(
                ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url, "-c", "copy",
                 "-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "1000000",
                 str(ff_dir / f"cam{i:03d}.mp4")], stdin=subprocess.DEVNULL))
        for store in workers:
            assert next_event(store)["event"] == "window_start"
        # Both windows start within a moment of each other; each is measured as its own.
        t0 = time.monotonic()
        cpu0 = {s: cpu_seconds(w.pid) for s, w in workers.items()}
        ff0 = [cpu_seconds(p.pid) for p in ffmpeg_procs]
        moto0 = cpu_seconds(moto.proc.pid)
        for store in workers:
            assert next_event(store)["event"] == "window_end"
        window = time.monotonic() - t0
        cpu = {s: cpu_seconds(w.pid) - cpu0[s] for s, w in workers.items()}
        rss = {s: rss_mb(w.pid) for s, w in workers.items()}
        ff_cpu = sum(cpu_seconds(p.pid) for p in ffmpeg_procs) - sum(ff0)
        ff_rss = sum(rss_mb(p.pid) for p in ffmpeg_procs)
        moto_cpu = cpu_seconds(moto.proc.pid) - moto0
        for p in ffmpeg_procs:
            p.terminate()
        for p in ffmpeg_procs:
            p.wait(30)
        for store in workers:
            next_event(store)  # done
            workers[store].wait(120)
        s3_files = bucket_files(moto.url, bucket, work / "s3-files")
    finally:
        for p in cam_procs + ffmpeg_procs + list(workers.values()):
            if p.poll() is None:
                p.kill()
        moto.stop()

    n = args.cameras
    outputs = {"local": sorted((work / "local" / "media").rglob("*.mp4")), "s3": s3_files,
               "ffmpeg": sorted((work / "ffmpeg").glob("*.mp4"))}
    frames = {k: [missing_frames(f, args.fps) for f in v] for k, v in outputs.items()}
    result: dict = {"cameras": n, "window_s": round(window, 1), "segment_s": args.segment_seconds,
                    "stream": f"{args.size}@{args.fps} {args.kbps} kbps"}
    for store in ("local", "s3"):
        result[store] = {"cpu_pct_per_camera": round(100 * cpu[store] / window / n, 3),
                         "rss_mb_per_camera": round((rss[store] - events[store]["baseline"]["rss_mb"]) / n, 2),
                         "frames": sum(a for a, _ in frames[store]),
                         "missing_frames": sum(b for _, b in frames[store]), "files": len(outputs[store])}
    result["ffmpeg"] = {"cpu_pct_per_camera": round(100 * ff_cpu / window / n, 3),
                        "rss_mb_per_camera": round(ff_rss / n, 2), "frames": sum(a for a, _ in frames["ffmpeg"]),
                        "missing_frames": sum(b for _, b in frames["ffmpeg"]), "files": len(outputs["ffmpeg"])}
    lags = events["s3"]["done"]["lags_s"]
    result["s3"]["upload_lag_s"] = {"segments": len(lags), "p50": percentile(lags, 0.5), "p99": percentile(lags, 0.99),
                                    "max": lags[-1] if lags else None,
                                    "never_stored": events["s3"]["done"]["not_stored"]}
    result["moto_cpu_pct"] = round(100 * moto_cpu / window, 1)
    for store in ("local", "s3"):
        result[f"cpu_ratio_{store}_over_ffmpeg"] = round(result[store]["cpu_pct_per_camera"]
                                                         / max(1e-9, result["ffmpeg"]["cpu_pct_per_camera"]), 3)
    result["cpu_ratio_s3_over_local"] = round(result["s3"]["cpu_pct_per_camera"]
                                              / max(1e-9, result["local"]["cpu_pct_per_camera"]), 3)
    shutil.rmtree(work, ignore_errors=True)
    return result


def bucket_files(endpoint: str, bucket: str, into: Path) -> list[Path]:
    """The bucket's segments, downloaded to check their frames like the others' files."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY)
    into.mkdir(parents=True)
    files = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".mp4") and "/recordings/" in f"/{obj['Key']}":
                path = into / obj["Key"].replace("/", "_")
                client.download_file(bucket, obj["Key"], str(path))
                files.append(path)
    return sorted(files)


def table(r: dict) -> str:
    lag = r["s3"]["upload_lag_s"]
    rows = [f"{r['cameras']} cameras, {r['window_s']} s window, {r['stream']}, {r['segment_s']:g} s segments; "
            f"moto {r['moto_cpu_pct']} % (not counted)", "",
            "| | Valt, local | Valt, s3 | ffmpeg CLI |", "|---|---|---|---|",
            f"| CPU / camera | {r['local']['cpu_pct_per_camera']} % | {r['s3']['cpu_pct_per_camera']} % | "
            f"{r['ffmpeg']['cpu_pct_per_camera']} % |",
            f"| CPU, ratio to ffmpeg | {r['cpu_ratio_local_over_ffmpeg']:.2f} | "
            f"{r['cpu_ratio_s3_over_ffmpeg']:.2f} | |",
            f"| RSS / camera | {r['local']['rss_mb_per_camera']} MB | {r['s3']['rss_mb_per_camera']} MB | "
            f"{r['ffmpeg']['rss_mb_per_camera']} MB |",
            f"| frames / missing | {r['local']['frames']:,} / {r['local']['missing_frames']} | "
            f"{r['s3']['frames']:,} / {r['s3']['missing_frames']} | "
            f"{r['ffmpeg']['frames']:,} / {r['ffmpeg']['missing_frames']} |",
            f"| files | {r['local']['files']} | {r['s3']['files']} | {r['ffmpeg']['files']} |",
            f"| segment close to whole in the bucket | | p50 {lag['p50']:.3f} s, p99 {lag['p99']:.3f} s, "
            f"max {lag['max']:.3f} s ({lag['segments']} segments, {lag['never_stored']} never) | |"
            if lag["segments"] else "| upload lag | | none measured | |"]
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", type=int, default=20)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--size", default="1280x720")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--kbps", type=int, default=2000)
    p.add_argument("--segment-seconds", type=float, default=5)
    p.add_argument("--role", default="driver", help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--endpoint", help=argparse.SUPPRESS)
    p.add_argument("--bucket", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "valt":
        asyncio.run(valt_worker(args.url, args.cameras, args.seconds, Path(args.out), args.store, args.endpoint,
                                args.bucket, args.segment_seconds))
        return
    if not shutil.which("ffmpeg"):
        raise SystemExit("the ffmpeg CLI is needed: apt-get install ffmpeg")
    result = run(args)
    print(json.dumps(result, indent=2))
    print(table(result))


if __name__ == "__main__":
    main()
