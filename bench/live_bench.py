"""Live-view benchmark: N cameras with M WebSocket viewers each, on this machine.

    .venv/bin/python bench/live_bench.py --cameras 10 --viewers 10 --seconds 20

One GStreamer RTSP camera (shared encoder) feeds N Valt cameras; a Valt server (its media
engine, the ``wss`` transport, hypercorn) runs as one process; N x M viewers read over real
WebSockets from another process. Three windows are measured on the server process: ingest
alone (no viewer), all viewers, and all viewers plus one stalled viewer that never reads.
For each: server CPU, memory, and the delay from a packet's arrival at the server to the send
of the fragment holding it (p50, p99), so the cost per viewer is set against ingest alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.record_bench import bench_room, cpu_seconds, rss_mb, start_camera  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# --- server process ------------------------------------------------------------------------

async def server(url: str, cameras: int, port: int, data: Path) -> None:
    import hypercorn.asyncio
    from hypercorn.config import Config

    from valt_core.app import create_app
    from valt_core.settings import load_settings

    settings = load_settings(None, {"VALT_DATA_DIR": str(data)})
    settings.server.send_buffer_kb = 64
    app = create_app(settings)
    ctx = app.extensions["valt"]
    await ctx.db.upgrade()
    await bench_room(ctx, url, cameras)
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    latencies: list[float] = []
    serving = asyncio.create_task(hypercorn.asyncio.serve(app, config, shutdown_trigger=stop.wait))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"event": "ready"}), flush=True)
    while True:
        line = (await reader.readline()).decode().strip()
        if line in ("", "quit"):
            break
        if line == "tokens":
            from valt_core.auth.media_tokens import issue_media_token
            tokens = {cid: issue_media_token(ctx.secret, cid, 1, 600)[0] for cid in range(1, cameras + 1)}
            print(json.dumps({"event": "tokens", "tokens": tokens}), flush=True)
        elif line == "reset":
            latencies.clear()
            for stream in ctx.engine.live_streams.values():
                stream.latency_log = latencies
                for v in stream.viewers:
                    v.latency = latencies
            online = sum(p.status == "online" for p in ctx.engine.pipelines.values())
            print(json.dumps({"event": "reset", "online": online}), flush=True)
        elif line == "report":
            viewers = sum(len(s.viewers) for s in ctx.engine.live_streams.values())
            dropped = sum(v.dropped for s in ctx.engine.live_streams.values() for v in s.viewers)
            report = {"event": "report", "samples": len(latencies), "p50_ms": 1000 * percentile(latencies, 0.5),
                      "p99_ms": 1000 * percentile(latencies, 0.99), "viewers": viewers, "dropped": dropped}
            print(json.dumps(report), flush=True)
    stop.set()
    await serving


# --- viewer process --------------------------------------------------------------------------

async def viewers(port: int, tokens: dict, per_camera: int, seconds_total: float, stalled_after: float) -> None:
    import websockets

    received = [0]

    async def watch(cam: str, token: str) -> None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/live/{cam}/ws?token={token}", max_size=None) as ws:
            async for _ in ws:
                received[0] += 1

    async def stall(cam: str, token: str) -> None:
        await asyncio.sleep(stalled_after)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        async with websockets.connect(f"ws://127.0.0.1:{port}/live/{cam}/ws?token={token}", sock=s,
                                      max_size=None, max_queue=1):
            await asyncio.sleep(seconds_total)  # never reads

    tasks = [asyncio.create_task(watch(cam, tok)) for cam, tok in tokens.items() for _ in range(per_camera)]
    first_cam, first_tok = next(iter(tokens.items()))
    tasks.append(asyncio.create_task(stall(first_cam, first_tok)))
    await asyncio.sleep(seconds_total)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"messages": received[0]}), flush=True)


# --- driver -------------------------------------------------------------------------------------

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", type=int, default=10)
    p.add_argument("--viewers", type=int, default=10, help="viewers per camera")
    p.add_argument("--seconds", type=float, default=20, help="length of each measured window")
    p.add_argument("--size", default="1280x720")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--kbps", type=int, default=2000)
    p.add_argument("--role", default="driver", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--tokens", help=argparse.SUPPRESS)
    p.add_argument("--stalled-after", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "server":
        asyncio.run(server(args.url, args.cameras, args.port, Path(args.data)))
        return
    if args.role == "viewers":
        asyncio.run(viewers(args.port, json.loads(args.tokens), args.viewers, args.seconds, args.stalled_after))
        return

    cam_procs, url = start_camera(args.size, args.fps, args.kbps)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = Path(tempfile.mkdtemp(prefix="valt-live-bench-"))
    srv = subprocess.Popen([sys.executable, __file__, "--role", "server", "--url", url, "--cameras", str(args.cameras),
                            "--port", str(port), "--data", str(data)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True)

    def ask(cmd: str) -> dict:
        srv.stdin.write(cmd + "\n")
        srv.stdin.flush()
        while True:
            line = srv.stdout.readline()
            if not line:
                raise SystemExit(f"the server died (exit {srv.poll()}) after {cmd!r}")
            if line.startswith("{"):
                return json.loads(line)

    def window(label: str, seconds: float) -> dict:
        ask("reset")
        c0, t0 = cpu_seconds(srv.pid), time.monotonic()
        time.sleep(seconds)
        cpu = (cpu_seconds(srv.pid) - c0) / (time.monotonic() - t0)
        report = ask("report")
        return {"window": label, "server_cpu_pct": round(100 * cpu, 2), "server_rss_mb": round(rss_mb(srv.pid), 1),
                "p50_ms": round(report["p50_ms"], 2), "p99_ms": round(report["p99_ms"], 2),
                "samples": report["samples"], "viewers": report["viewers"], "dropped_fragments": report["dropped"]}

    results = []
    try:
        while not srv.stdout.readline().startswith('{"event": "ready"'):
            pass
        time.sleep(6)  # every camera connects
        results.append(window("ingest only", args.seconds))
        tokens = ask("tokens")["tokens"]
        total = 6 + 2 * args.seconds + 4
        clients = subprocess.Popen([sys.executable, __file__, "--role", "viewers", "--port", str(port),
                                    "--tokens", json.dumps(tokens), "--viewers", str(args.viewers),
                                    "--seconds", str(total), "--stalled-after", str(6 + args.seconds)],
                                   stdout=subprocess.PIPE, text=True)
        time.sleep(6)
        results.append(window(f"{args.cameras * args.viewers} viewers", args.seconds))
        time.sleep(1)
        results.append(window(f"{args.cameras * args.viewers} viewers + 1 stalled", args.seconds))
        clients.wait(60)
        srv.stdin.write("quit\n")
        srv.stdin.flush()
        srv.wait(30)
    finally:
        for proc in cam_procs + [srv]:
            if proc.poll() is None:
                proc.terminate()
    ingest, watched = results[0]["server_cpu_pct"], results[1]["server_cpu_pct"]
    n = args.cameras * args.viewers
    print(json.dumps({
        "cameras": args.cameras, "viewers": n, "stream": f"{args.size}@{args.fps} {args.kbps} kbps",
        "windows": results,
        "cpu_pct_per_viewer": round((watched - ingest) / n, 3),
        "ingest_cpu_pct_per_camera": round(ingest / args.cameras, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
