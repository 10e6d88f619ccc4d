"""Sign-in flood benchmark: what a flood of wrong sign-ins does to everyone else's requests.

    .venv/bin/python bench/login_flood.py --workers 12 --seconds 10

A real ``valt serve`` (default argon2 cost) runs as its own process. A client process asks
``GET /api/v1/rooms`` with a valid token over and over: once alone (the baseline), then while
``--workers`` threads post sign-ins for unknown names as fast as they are answered, each from
its own loopback address (127.0.0.10, .11, ...: a spread-out attacker), and finally from one
address. Each flood runs twice: with the default bounds (``[auth] max_concurrent_checks``,
``check_queue``, ``address_failures_per_minute``) and with them lifted (what Valt did before).
Printed per run: the unrelated request's p50/p99 and their ratio to the baseline, and how the
sign-ins were answered.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VALT = [sys.executable, "-m", "valt_core"]

UNBOUNDED = {"VALT_AUTH__MAX_CONCURRENT_CHECKS": "64", "VALT_AUTH__CHECK_QUEUE": "100000",
             "VALT_AUTH__ADDRESS_FAILURES_PER_MINUTE": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def request(port: int, method: str, path: str, body: dict | None = None, token: str = "",
            source: str = "127.0.0.1") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


class ValtServer:
    """A ``valt serve`` process with one admin, on its own data directory."""

    def __init__(self, data: Path, env_extra: dict[str, str]) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VALT_")}
        env.update(VALT_DATA_DIR=str(data), **env_extra)
        subprocess.run(VALT + ["db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run(VALT + ["user", "add", "bench", "--admin", "--password-stdin"], env=env, check=True,
                       capture_output=True, input=b"bench password 1\n")
        self.log = open(data / "server.log", "w")
        self.proc = subprocess.Popen(VALT + ["serve", "--port", str(self.port)], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if request(self.port, "GET", "/api/v1/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        status, data_ = request(self.port, "POST", "/api/v1/auth/login",
                                {"username": "bench", "password": "bench password 1"})
        assert status == 200, data_
        self.token = json.loads(data_)["token"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()


def measure(port: int, token: str, seconds: float) -> list[float]:
    """Latencies of GET /api/v1/rooms, one after another, for ``seconds``."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        status, _ = request(port, "GET", "/api/v1/rooms", token=token)
        out.append(time.perf_counter() - t)
        assert status == 200
    return out


def flood(port: int, workers: int, seconds: float, spread: bool) -> tuple[list[float], Counter]:
    """Run the flood and measure the unrelated request meanwhile."""
    answers: Counter = Counter()
    stop = threading.Event()

    def worker(i: int) -> None:
        source = f"127.0.0.{10 + i}" if spread else "127.0.0.9"
        n = 0
        while not stop.is_set():
            n += 1
            try:
                status, _ = request(port, "POST", "/api/v1/auth/login",
                                    {"username": f"nobody-{i}-{n}", "password": "guess"}, source=source)
            except OSError:
                status = 0
            answers[status] += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # let the flood build up
    return_value = measure(port, _flood_token, seconds)
    stop.set()
    for t in threads:
        t.join(timeout=70)
    return return_value, answers


_flood_token = ""


def main() -> int:
    global _flood_token
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=12)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    print(f"login flood: {args.workers} workers, {args.seconds:g} s per window, {os.cpu_count()} cores")
    print(f"{'run':<34} {'p50 ms':>8} {'p99 ms':>8} {'p50 x':>7} {'p99 x':>7}  sign-in answers")
    for label, env in (("bounded (defaults)", {}), ("unbounded (as before)", UNBOUNDED)):
        with tempfile.TemporaryDirectory(prefix="valt-flood-") as tmp:
            server = ValtServer(Path(tmp), env)
            try:
                _flood_token = server.token
                base = measure(server.port, server.token, args.seconds)
                b50, b99 = percentile(base, 0.5), percentile(base, 0.99)
                print(f"{label + ', no flood':<34} {b50 * 1e3:8.1f} {b99 * 1e3:8.1f} {1:7.1f} {1:7.1f}")
                for spread in (True, False):
                    lat, answers = flood(server.port, args.workers, args.seconds, spread)
                    l50, l99 = percentile(lat, 0.5), percentile(lat, 0.99)
                    name = f"{label}, {'many addresses' if spread else 'one address'}"
                    said = ", ".join(f"{k}: {v}" for k, v in sorted(answers.items()))
                    print(f"{name:<34} {l50 * 1e3:8.1f} {l99 * 1e3:8.1f} {l50 / b50:7.1f} {l99 / b99:7.1f}  {said}")
            finally:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
