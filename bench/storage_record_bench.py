"""Recording to each store side by side: ``local``, an ``s3`` bucket, a ``nas`` share, and the ffmpeg CLI.

    .venv/bin/python bench/storage_record_bench.py --cameras 20 --seconds 30
    .venv/bin/python bench/storage_record_bench.py --cameras 20 --stores local,nas

One GStreamer RTSP camera (shared encoder) serves every client on loopback. One Valt process
per store records N cameras: to its ``local`` store, to an S3 bucket (moto in server mode, as
in the tests; a real S3 adds its network), and to an SMB share (a private Samba,
``tests/peers/samba.py``, as in the tests: SMB 3, signing required, no encryption; a real NAS
adds its network and disks). The ffmpeg CLI records the N streams with ``-c copy``, one process
per camera. ``--stores`` picks which Valt workers run (all three by default); ffmpeg always runs.

The workers start together and then begin recording one after another (each one's cameras
online before the next's join), then ffmpeg joins five processes a second: many clients
joining one GStreamer server at once can stall it. Once every ffmpeg file has begun, one
window opens for all: each worker measures its own CPU over it from /proc and its resident
memory at its end (growth since before it had cameras, per camera); the driver measures
ffmpeg, moto and Samba (smbd's whole process group) and the machine's busy time. Every output
is checked for missing frames, and the index of each recording for gaps (those before the
window are cameras still starting); frame counts differ because each side records from its own
start to its own stop.

Upload lag: for each segment closed in the window, the time from the recorder closing it (every
fragment was flushed to the spool by then) to it being whole in the store. For ``s3`` that is a
``HEAD`` of the object finding it (a multipart upload is only visible once completed); for
``nas``, the file under its final name (the backend copies to ``KEY.partial`` and renames it)
with every byte the recorder wrote, seen in the share's directory on Samba's side. That is
what Samba holds, not proof that it is on Samba's disk: nothing asks Samba to flush the file.
Both are polled every 50 ms by the Valt process. A NAS segment goes to the share whole after its
close; an S3 one as multipart parts of ``part_size_mb``. Either way the close-to-store time
bounds how long the newest media lives only in the spool. moto's and Samba's own CPU are
reported apart and not counted as Valt's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.record_bench import bench_room, cpu_seconds, missing_frames, rss_mb, start_camera  # noqa: E402

ACCESS_KEY, SECRET_KEY = "bench-access-key", "bench-secret-key"
STORES = ("local", "s3", "nas")
#: Stores whose segments go on to a remote after they are closed: their lag is measured.
REMOTE = ("s3", "nas")
NAS_SHARE, NAS_FOLDER = "valt", "bench"
#: The SMB password reaches the worker in its environment, not on its command line.
SMB_PASSWORD_ENV = "VALT_BENCH_SMB_PASSWORD"
TICKS = os.sysconf("SC_CLK_TCK")
#: A worker whose cameras are not all online by then gives up (the RTSP server has stalled).
ONLINE_WITHIN_S = 120
#: ffmpeg processes started at once, a second apart.
FFMPEG_BATCH = 5


# --- the Valt side, one process per store ---------------------------------------------------

def store_settings(settings, args: argparse.Namespace) -> None:
    """Point ``settings`` at the store this worker records to (``local`` needs nothing)."""
    if args.store == "s3":
        settings.storage.driver = "s3"
        settings.storage.options = {"bucket": args.bucket, "endpoint_url": args.endpoint,
                                    "credentials": "environment", "part_size_mb": 5}
    elif args.store == "nas":
        # As the tests configure it; everything else (fsync of the spool, timeouts, the spool
        # below the data directory) is the backend's default, as a site would start with.
        settings.storage.driver = "nas"
        settings.storage.options = {"mode": "smb", "server": "127.0.0.1", "port": args.smb_port,
                                    "share": NAS_SHARE, "path": NAS_FOLDER, "user": args.smb_user,
                                    "password": os.environ[SMB_PASSWORD_ENV]}


async def valt_worker(args: argparse.Namespace) -> None:
    """Record ``args.cameras`` cameras to ``args.store``, printing JSON events for the driver."""
    from valt_core.context import ValtContext
    from valt_core.heap import freeze_startup_heap
    from valt_core.settings import load_settings

    settings = load_settings(None, {"VALT_DATA_DIR": args.out})
    settings.media.always_on = False
    settings.media.min_free_mb = 0
    settings.media.segment_seconds = args.segment_seconds
    store_settings(settings, args)
    ctx = ValtContext.build(settings)
    await ctx.db.upgrade()
    closed: dict[str, float] = {}
    stored: dict[str, float] = {}
    watcher_cpu = [0.0]  # CPU seconds of the watcher's thread so far
    if args.store == "s3":
        watch_uploads(ctx.storage, closed, stored, s3_whole(args.endpoint, args.bucket,
                                                            getattr(ctx.storage.config, "prefix", "")), watcher_cpu)
    elif args.store == "nas":
        watch_uploads(ctx.storage, closed, stored, share_whole(Path(args.share_dir)), watcher_cpu)
    room_id = await bench_room(ctx, args.url, args.cameras)
    await ctx.media.start()
    freeze_startup_heap()
    say("baseline", rss_mb=rss_mb(os.getpid()))
    await asyncio.to_thread(sys.stdin.readline)  # the driver's turn for this worker's cameras
    rec = await ctx.media.start_recording(room_id, None, "bench")
    began = time.monotonic()
    deadline = time.monotonic() + ONLINE_WITHIN_S
    while not all(p.status == "online" for p in ctx.engine.pipelines.values()):
        if time.monotonic() > deadline:
            # A stalled RTSP server: say so and end, rather than leave the driver waiting.
            offline = sum(p.status != "online" for p in ctx.engine.pipelines.values())
            say("failed", why=f"{offline} of {args.cameras} cameras not online after {ONLINE_WITHIN_S} s")
            os._exit(1)
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    # Every worker's window opens on the driver's word, so that all are measured over the same
    # seconds: one whose cameras came online sooner would otherwise end, and stop recording,
    # while the others' windows still run.
    say("ready")
    await asyncio.to_thread(sys.stdin.readline)
    t0, cpu0, watched0 = time.monotonic(), cpu_seconds(os.getpid()), watcher_cpu[0]
    say("window_start", recording_s=round(time.monotonic() - began, 2))
    await asyncio.sleep(args.seconds)
    t1 = time.monotonic()
    # The watcher is the bench's, not Valt's (the s3 one makes an HTTP request per look): its
    # CPU is taken out of the process's and reported apart.
    watched = watcher_cpu[0] - watched0
    say("window_end", cpu_s=cpu_seconds(os.getpid()) - cpu0 - watched, watcher_cpu_s=watched, window_s=t1 - t0,
        rss_mb=rss_mb(os.getpid()))
    await asyncio.sleep(0.5)
    await ctx.media.stop_recording(rec.id)
    await ctx.media.stop()
    deadline = time.monotonic() + 60
    while args.store in REMOTE and set(closed) - set(stored) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    lags = sorted(stored[k] - closed[k] for k in closed if k in stored)
    # Before the window fewer recorders ran (they start one after another): those closes are
    # kept apart, and the one figure reported is of segments closed while everything ran.
    in_window = [k for k in closed if t0 <= closed[k] <= t1]
    window_lags = sorted(stored[k] - closed[k] for k in in_window if k in stored)
    index = await recorded(ctx, rec.id)
    await ctx.close()
    say("done", recording_id=rec.id, lags_s=lags, not_stored=len(set(closed) - set(stored)),
        window_lags_s=window_lags, window_not_stored=sum(k not in stored for k in in_window), **index)


def say(event: str, **fields) -> None:
    """One event for the driver: a JSON line on stdout (the logs go to stderr)."""
    print(json.dumps({"event": event, **fields}), flush=True)


async def recorded(ctx, recording_id: int) -> dict:
    """What the index holds of the recording: segments, seconds of media, and gaps.

    The frames check reads each file alone; a stretch lost between two segments shows only here.
    """
    import sqlalchemy as sa

    from valt_core.db.models import Gap, Segment, Track

    async with ctx.db.session() as s:
        tracks = sa.select(Track.id).where(Track.recording_id == recording_id)
        segments, seconds = (await s.exec(sa.select(sa.func.count(Segment.id), sa.func.sum(Segment.duration_s))
                                          .where(Segment.track_id.in_(tracks)))).one()
        gaps = (await s.exec(sa.select(Gap.start_s, Gap.end_s, Gap.reason)
                             .where(Gap.track_id.in_(tracks)).order_by(Gap.start_s))).all()
    return {"segments": segments, "media_s": round(seconds or 0.0, 1), "gaps": len(gaps),
            "gap_s": round(sum((end or start) - start for start, end, _ in gaps), 1),
            "gap_list": [(round(start, 2), round(end or start, 2), reason) for start, end, reason in gaps]}


def s3_whole(endpoint: str, bucket: str, prefix: str) -> Callable[[str, int], bool]:
    """A check that ``key`` is in the bucket: a completed multipart upload is the whole object."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY)

    def whole(key: str, size: int) -> bool:
        try:
            client.head_object(Bucket=bucket, Key=prefix + key)
        except Exception:  # noqa: BLE001 - not there yet
            return False
        return True

    return whole


def share_whole(folder: Path) -> Callable[[str, int], bool]:
    """A check that ``key`` is on the share under its final name with all ``size`` bytes.

    ``folder`` is the share's directory as Samba keeps it on this machine's disk, so the bench
    looks without a second SMB session of its own (which would cost Samba CPU we report).
    """
    def whole(key: str, size: int) -> bool:
        try:
            return os.stat(folder.joinpath(*key.split("/"))).st_size == size
        except FileNotFoundError:
            return False

    return whole


def watch_uploads(storage, closed: dict[str, float], stored: dict[str, float],
                  whole: Callable[[str, int], bool], cpu: list[float]) -> None:
    """Note when each writer is closed, and when ``whole`` first finds its object in the store.

    ``cpu[0]`` follows the CPU time of the thread that looks, so it can be kept out of Valt's.
    """
    opened = storage.open_writer
    sizes: dict[str, int] = {}

    async def open_writer(key: str):
        writer = await opened(key)
        write, close = writer.write, writer.close
        sizes[key] = 0

        async def counted_write(data: bytes) -> None:
            # What the recorder handed over is what must arrive: the size the watcher waits for.
            sizes[key] += len(data)
            await write(data)

        async def timed_close() -> int:
            closed[key] = time.monotonic()
            return await close()

        writer.write, writer.close = counted_write, timed_close
        return writer

    storage.open_writer = open_writer

    def poll() -> None:
        while True:
            for key in list(closed):
                if key not in stored and whole(key, sizes[key]):
                    stored[key] = time.monotonic()
            cpu[0] = time.thread_time()
            time.sleep(0.05)

    threading.Thread(target=poll, daemon=True).start()


# --- the driver ----------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted ``values`` (nearest rank), ``None`` when there are none."""
    if not values:
        return None
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def group_cpu_seconds(pgid: int) -> dict[int, float]:
    """CPU seconds of each process in process group ``pgid``, reaped children included.

    smbd forks a process per connection (and helpers); they stay in the group its session
    started. A child's time moves into its parent's ``cutime`` when it is reaped, so the sum
    over the group only grows.
    """
    found: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid:
            found[int(stat.parent.name)] = sum(int(f) for f in fields[11:15]) / TICKS
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from ``/proc/stat``."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS, sum(fields[:8]) / TICKS


def run(args: argparse.Namespace) -> dict:
    """Start the peers, the camera, the Valt workers and ffmpeg; measure one window; check outputs."""
    import boto3

    from tests.peers.s3 import MotoS3
    from tests.peers.samba import PrivateSamba

    stores = args.stores
    work = Path(tempfile.mkdtemp(prefix="valt-storage-bench-"))
    bucket = "valt-bench"
    moto = samba = None
    env = dict(os.environ)
    cam_procs: list[subprocess.Popen] = []
    workers: dict[str, subprocess.Popen] = {}
    events: dict[str, dict[str, dict]] = {s: {} for s in stores}
    ffmpeg_procs: list[subprocess.Popen] = []

    def next_event(store: str) -> dict:
        while True:
            line = workers[store].stdout.readline()
            if not line:
                raise SystemExit(f"the Valt worker for {store} died")
            if line.startswith("{"):
                event = json.loads(line)
                if event["event"] == "failed":
                    raise SystemExit(f"the Valt worker for {store} gave up: {event['why']}")
                events[store][event["event"]] = event
                return event

    def tell(store: str, word: str) -> None:
        workers[store].stdin.write(word + "\n")
        workers[store].stdin.flush()

    try:
        if "s3" in stores:
            moto = MotoS3(work / "moto")
            boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                         aws_secret_access_key=SECRET_KEY).create_bucket(Bucket=bucket)
            env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        if "nas" in stores:
            samba = PrivateSamba(work / "samba")
            env[SMB_PASSWORD_ENV] = samba.password
        share_dir = samba.shares[NAS_SHARE] / NAS_FOLDER if samba else None
        cam_procs, url = start_camera(args.size, args.fps, args.kbps)
        # One GStreamer server with 80 clients can stall when many join at once: in one run
        # every client timed out, and timed out again on each reconnect, for ten minutes. So
        # the workers start together but record one after another, each one's cameras online
        # before the next begins, then ffmpeg five a second.
        for store in stores:
            cmd = [sys.executable, __file__, "--role", "valt", "--store", store, "--url", url, "--cameras",
                   str(args.cameras), "--seconds", str(args.seconds), "--out", str(work / store),
                   "--segment-seconds", str(args.segment_seconds)]
            if store == "s3":
                cmd += ["--endpoint", moto.url, "--bucket", bucket]
            if store == "nas":
                cmd += ["--smb-port", str(samba.port), "--smb-user", samba.user, "--share-dir", str(share_dir)]
            workers[store] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for store in workers:
            assert next_event(store)["event"] == "baseline"
        for store in workers:
            tell(store, "record")
            assert next_event(store)["event"] == "ready"
        ff_dir = work / "ffmpeg"
        ff_dir.mkdir()
        for i in range(args.cameras):
            if i and i % FFMPEG_BATCH == 0:
                time.sleep(1)
            ffmpeg_procs.append(subprocess.Popen(
                ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url, "-c", "copy",
                 "-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "1000000",
                 str(ff_dir / f"cam{i:03d}.mp4")], stdin=subprocess.DEVNULL))
        files = [ff_dir / f"cam{i:03d}.mp4" for i in range(args.cameras)]
        deadline = time.monotonic() + ONLINE_WITHIN_S
        while not all(f.exists() and f.stat().st_size > 0 for f in files):
            if time.monotonic() > deadline or any(p.poll() is not None for p in ffmpeg_procs):
                raise SystemExit("the ffmpeg recorders did not all begin their files: the camera may have stalled")
            time.sleep(0.2)
        time.sleep(2)  # the last ffmpeg's start-up is not in the window
        # One window for all: the workers measure their own CPU over it, this side the rest.
        t0 = time.monotonic()
        for store in workers:
            tell(store, "go")
        ff0 = [cpu_seconds(p.pid) for p in ffmpeg_procs]
        moto0 = cpu_seconds(moto.proc.pid) if moto else 0.0
        smb0 = group_cpu_seconds(samba.proc.pid) if samba else {}
        busy0, total0 = machine_busy()
        for store in workers:
            assert next_event(store)["event"] == "window_start"
        for store in workers:
            assert next_event(store)["event"] == "window_end"
        window = time.monotonic() - t0
        ff_cpu = sum(cpu_seconds(p.pid) for p in ffmpeg_procs) - sum(ff0)
        ff_rss = sum(rss_mb(p.pid) for p in ffmpeg_procs)
        moto_cpu = cpu_seconds(moto.proc.pid) - moto0 if moto else None
        smb1 = group_cpu_seconds(samba.proc.pid) if samba else {}
        # A process that ended in the window without being reaped yet drops out: count it at its start.
        smb_cpu = sum(smb1.get(pid, t) - t for pid, t in smb0.items()) + sum(
            t for pid, t in smb1.items() if pid not in smb0) if samba else None
        busy1, total1 = machine_busy()
        load = Path("/proc/loadavg").read_text().split()[:3]
        for p in ffmpeg_procs:
            p.terminate()
        for p in ffmpeg_procs:
            p.wait(30)
        for store in workers:
            next_event(store)  # done
            workers[store].wait(120)
        s3_files = bucket_files(moto.url, bucket, work / "s3-files") if moto else []
    except BaseException:
        # A failed run keeps nothing: the recordings are hundreds of MB in a shared /tmp.
        failed = True
        raise
    else:
        failed = False
    finally:
        for p in cam_procs + ffmpeg_procs + list(workers.values()):
            if p.poll() is None:
                p.kill()
        if moto:
            moto.stop()
        if samba:
            samba.stop()  # its files stay, to be read below
        if failed:
            shutil.rmtree(work, ignore_errors=True)

    n = args.cameras
    outputs = {"ffmpeg": sorted((work / "ffmpeg").glob("*.mp4"))}
    if "local" in stores:
        outputs["local"] = sorted((work / "local" / "media").rglob("*.mp4"))
    if "s3" in stores:
        outputs["s3"] = s3_files
    if "nas" in stores:
        outputs["nas"] = sorted(p for p in share_dir.rglob("*.mp4") if "recordings" in p.relative_to(share_dir).parts)
    frames = {k: [missing_frames(f, args.fps) for f in v] for k, v in outputs.items()}
    result: dict = {"cameras": n, "stores": list(stores), "window_s": round(window, 1),
                    "segment_s": args.segment_seconds, "stream": f"{args.size}@{args.fps} {args.kbps} kbps",
                    "machine_busy_pct": round(100 * (busy1 - busy0) / (total1 - total0) * os.cpu_count(), 1),
                    "cores": os.cpu_count(), "load": " ".join(load)}
    cpu = {s: events[s]["window_end"]["cpu_s"] + events[s]["window_end"]["watcher_cpu_s"] for s in stores}
    for store in stores:
        end, done = events[store]["window_end"], events[store]["done"]
        result[store] = {"cpu_pct_per_camera": round(100 * end["cpu_s"] / end["window_s"] / n, 3),
                         "watcher_cpu_pct": round(100 * end["watcher_cpu_s"] / end["window_s"], 2),
                         "rss_mb_per_camera": round((end["rss_mb"] - events[store]["baseline"]["rss_mb"]) / n, 2),
                         # Per camera is growth since before the cameras: both ends kept to check it by.
                         "rss_mb_before_cameras": round(events[store]["baseline"]["rss_mb"], 1),
                         "rss_mb_at_end": round(end["rss_mb"], 1),
                         "frames": sum(a for a, _ in frames[store]),
                         "missing_frames": sum(b for _, b in frames[store]), "files": len(outputs[store]),
                         "segments_indexed": done["segments"], "media_s": done["media_s"], "gaps": done["gaps"],
                         "gap_s": done["gap_s"], "gap_list": done["gap_list"],
                         "window_from_recording_s": events[store]["window_start"]["recording_s"]}
    result["ffmpeg"] = {"cpu_pct_per_camera": round(100 * ff_cpu / window / n, 3),
                        "rss_mb_per_camera": round(ff_rss / n, 2), "frames": sum(a for a, _ in frames["ffmpeg"]),
                        "missing_frames": sum(b for _, b in frames["ffmpeg"]), "files": len(outputs["ffmpeg"])}
    for store in stores:
        if store in REMOTE:
            done = events[store]["done"]
            result[store]["upload_lag_s"] = {
                "segments": len(done["window_lags_s"]), "p50": percentile(done["window_lags_s"], 0.5),
                "p99": percentile(done["window_lags_s"], 0.99), "max": max(done["window_lags_s"], default=None),
                "never_stored": done["window_not_stored"],
                "all_segments": {"segments": len(done["lags_s"]), "p50": percentile(done["lags_s"], 0.5),
                                 "p99": percentile(done["lags_s"], 0.99), "max": max(done["lags_s"], default=None),
                                 "never_stored": done["not_stored"]}}
    if moto_cpu is not None:
        result["moto_cpu_pct"] = round(100 * moto_cpu / window, 1)
    if smb_cpu is not None:
        result["samba_cpu_pct"] = round(100 * smb_cpu / window, 1)
    valt_cpu = sum(cpu.values())
    result["bench_cpu_pct"] = round(100 * (valt_cpu + ff_cpu + (moto_cpu or 0) + (smb_cpu or 0)) / window, 1)
    for store in stores:
        result[f"cpu_ratio_{store}_over_ffmpeg"] = round(result[store]["cpu_pct_per_camera"]
                                                         / max(1e-9, result["ffmpeg"]["cpu_pct_per_camera"]), 3)
        if store != "local" and "local" in stores:
            result[f"cpu_ratio_{store}_over_local"] = round(result[store]["cpu_pct_per_camera"]
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
    """The result as a Markdown table, one column per Valt store and one for ffmpeg."""
    stores = r["stores"]
    cols = [f"Valt, {s}" for s in stores] + ["ffmpeg CLI"]
    peers = "; ".join(f"{name} {r[key]} % (not counted)" for name, key in (("moto", "moto_cpu_pct"),
                                                                          ("Samba", "samba_cpu_pct")) if key in r)

    def row(label: str, cell, ffmpeg: str = "") -> str:
        return "| " + " | ".join([label] + [cell(s) for s in stores] + [ffmpeg]) + " |"

    def lag(s: str) -> str:
        if s not in REMOTE:
            return ""
        lag = r[s]["upload_lag_s"]
        if not lag["segments"]:
            return f"none measured ({lag['never_stored']} never)"
        return (f"p50 {lag['p50']:.3f} s, p99 {lag['p99']:.3f} s, max {lag['max']:.3f} s "
                f"({lag['segments']} segments, {lag['never_stored']} never)")

    def gaps(s: str, in_window: bool) -> str:
        # Gaps before the window are cameras still starting when the recording began.
        found = [g for g in r[s]["gap_list"] if (g[1] > r[s]["window_from_recording_s"]) == in_window]
        return f"{len(found)} ({sum(b - a for a, b, _ in found):.1f} s)"

    ff = r["ffmpeg"]
    rows = [f"{r['cameras']} cameras, {r['window_s']} s window, {r['stream']}, {r['segment_s']:g} s segments"
            + (f"; {peers}" if peers else ""),
            f"machine busy {r['machine_busy_pct']} % of {100 * r['cores']} % (the bench's processes "
            f"{r['bench_cpu_pct']} %), load {r['load']}", "",
            "| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|",
            row("CPU / camera", lambda s: f"{r[s]['cpu_pct_per_camera']} %", f"{ff['cpu_pct_per_camera']} %"),
            row("the bench's watcher, of a core (not counted)",
                lambda s: f"{r[s]['watcher_cpu_pct']} %" if s in REMOTE else ""),
            row("CPU, ratio to ffmpeg", lambda s: f"{r[f'cpu_ratio_{s}_over_ffmpeg']:.2f}"),
            *([row("CPU, ratio to local", lambda s: f"{r[f'cpu_ratio_{s}_over_local']:.2f}"
                   if f"cpu_ratio_{s}_over_local" in r else "")]
              if any(f"cpu_ratio_{s}_over_local" in r for s in stores) else []),
            row("RSS / camera", lambda s: f"{r[s]['rss_mb_per_camera']} MB", f"{ff['rss_mb_per_camera']} MB"),
            row("frames / missing", lambda s: f"{r[s]['frames']:,} / {r[s]['missing_frames']}",
                f"{ff['frames']:,} / {ff['missing_frames']}"),
            row("files", lambda s: str(r[s]["files"]), str(ff["files"])),
            row("media indexed", lambda s: f"{r[s]['media_s']:,.1f} s in {r[s]['segments_indexed']} segments"),
            row("gaps before / in the window", lambda s: f"{gaps(s, False)} / {gaps(s, True)}"),
            row("segment close to whole in the store (closed in the window)", lag)]
    return "\n".join(rows)


def store_list(text: str) -> tuple[str, ...]:
    """``--stores``: a comma-separated subset of the stores, kept in the bench's own order."""
    asked = {s.strip() for s in text.split(",") if s.strip()}
    unknown = asked - set(STORES)
    if unknown or not asked:
        raise argparse.ArgumentTypeError(f"stores are a comma-separated list of {', '.join(STORES)}")
    return tuple(s for s in STORES if s in asked)


def main() -> None:
    """Run the bench (the driver), or one Valt worker when the driver starts this file as one."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", type=int, default=20)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--size", default="1280x720")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--kbps", type=int, default=2000)
    p.add_argument("--segment-seconds", type=float, default=5)
    p.add_argument("--stores", type=store_list, default=STORES,
                   help=f"Valt stores to record to, comma-separated (default {','.join(STORES)})")
    p.add_argument("--role", default="driver", help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--endpoint", help=argparse.SUPPRESS)
    p.add_argument("--bucket", help=argparse.SUPPRESS)
    p.add_argument("--smb-port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--smb-user", help=argparse.SUPPRESS)
    p.add_argument("--share-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "valt":
        asyncio.run(valt_worker(args))
        return
    if not shutil.which("ffmpeg"):
        raise SystemExit("the ffmpeg CLI is needed: apt-get install ffmpeg")
    # Killed, the driver still stops what it started: smbd runs in a session of its own.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(args)
    print(json.dumps(result, indent=2))
    print(table(result))


if __name__ == "__main__":
    main()
