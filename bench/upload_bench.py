"""Upload benchmark: a 1 GB video sent over tus to a real ``valt serve``, against the disk itself.

    .venv/bin/python bench/upload_bench.py [--mb 1024] [--chunk-mb 64] [--runs 2]

The video is made once with the ffmpeg CLI (lossless noise, so a few seconds of H.264 weigh a
gigabyte). ``valt serve`` runs on SQLite with local storage, both in the same temporary
directory as the disk figures. Measured, in the same run:

- **disk**: ``dd if=/dev/zero bs=8M conv=fdatasync`` of the same size into the same directory,
  and a plain Python loop writing 1 MiB blocks with an ``fdatasync`` every 8 MiB (what the
  server does with ``[uploads] commit_every_mb = 8``): the floors an upload stands on;
- **tus PATCH**: the file sent from a local copy in ``--chunk-mb`` PATCHes, each with
  ``Upload-Checksum: sha256`` (checked before it is committed), and again without checksums (the
  offset committed every 8 MiB); MB/s from the first byte to the answer of the last PATCH,
  which includes the whole file's SHA-256 and the probe the server makes at the end;
- **to a recording**: from the last PATCH's answer to the upload's ``done`` (the stream copy
  into segments, written through the storage backend and indexed).

The client runs on the same machine and shares its two cores with the server.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.relay_bench import http  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
VALT = [sys.executable, "-m", "valt_core"]
MB = 1024 * 1024


def api(base: str, method: str, path: str, body=None, token: str | None = None):
    """A JSON request to ``base + path``; (status, answer)."""
    return http(method, base + path, body, token)


def make_video(path: Path, mb: int) -> None:
    """An H.264 video of about ``mb`` MiB (lossless noise at 640x360: about 11 MiB a second)."""
    seconds = max(2.0, mb / 10.8)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
                    "-t", f"{seconds:.1f}", "-vf", "noise=alls=60:allf=t", "-c:v", "libx264", "-preset",
                    "ultrafast", "-qp", "0", "-g", "50", str(path)], check=True)


def dd_mb_s(directory: Path, mb: int) -> float:
    """dd's own write speed into ``directory`` (8 MiB blocks, data synced at the end)."""
    target = directory / "dd.bin"
    started = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=8M", f"count={mb // 8}", "conv=fdatasync"],
                   check=True, capture_output=True)
    took = time.monotonic() - started
    target.unlink()
    return mb / took


def python_mb_s(directory: Path, mb: int) -> float:
    """A plain Python write of 1 MiB blocks with an fdatasync every 8 MiB, as the server commits."""
    target = directory / "py.bin"
    block = os.urandom(MB)
    started = time.monotonic()
    with open(target, "wb") as f:
        for i in range(mb):
            f.write(block)
            if i % 8 == 7:
                f.flush()
                os.fdatasync(f.fileno())
        f.flush()
        os.fdatasync(f.fileno())
    took = time.monotonic() - started
    target.unlink()
    return mb / took


def send(url: str, token: str, path: Path, chunk: int, checksum: bool) -> float:
    """Send the whole file in PATCHes; seconds from the first byte to the last answer."""
    parts = urlsplit(url)
    size = path.stat().st_size
    offset = 0
    started = time.monotonic()
    with open(path, "rb") as f:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
        while offset < size:
            data = f.read(chunk)
            headers = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
                       "Content-Type": "application/offset+octet-stream"}
            if checksum:
                headers["Upload-Checksum"] = "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()
            conn.request("PATCH", parts.path, body=data, headers=headers)
            r = conn.getresponse()
            r.read()
            if r.status != 204:
                raise SystemExit(f"PATCH at {offset} answered {r.status}")
            offset = int(r.getheader("Upload-Offset"))
        conn.close()
    return time.monotonic() - started


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024, help="size of the video, MiB")
    parser.add_argument("--chunk-mb", type=int, default=64, help="bytes per PATCH, MiB")
    parser.add_argument("--runs", type=int, default=2, help="uploads of each kind")
    parser.add_argument("--commit-mb", type=float, default=8.0, help="[uploads] commit_every_mb of the server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="valt-upload-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        d = Path(tmp)
        video = d / "session.mp4"
        make_video(video, args.mb)
        size_mb = video.stat().st_size / MB
        disk_dd = [dd_mb_s(d, args.mb) for _ in range(args.runs)]
        disk_py = [python_mb_s(d, args.mb) for _ in range(args.runs)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("VALT_")}
        env.update({"VALT_DATA_DIR": str(d / "data"), "VALT_MEDIA__MIN_FREE_MB": "0",
                    "VALT_UPLOADS__QUOTA_MB": "0", "VALT_MEDIA__ALWAYS_ON": "false",
                    "VALT_UPLOADS__COMMIT_EVERY_MB": str(args.commit_mb)})
        subprocess.run(VALT + ["db", "upgrade"], env=env, check=True, capture_output=True, cwd=d)
        subprocess.run(VALT + ["user", "add", "bench", "--admin", "--password-stdin"], input="bench password 1\n",
                       text=True, env=env, check=True, capture_output=True, cwd=d)
        port = 18080 + os.getpid() % 1000
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(VALT + ["serve", "--port", str(port)], env=env, cwd=d,
                                  stdout=open(d / "serve.log", "w"), stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                try:
                    if api(base, "GET", "/api/v1/health")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            login = {"username": "bench", "password": "bench password 1"}
            token = api(base, "POST", "/api/v1/auth/login", login)[1]["token"]
            room = api(base, "POST", "/api/v1/rooms", {"name": "Bench"}, token)[1]["id"]
            results: dict[str, list[float]] = {"sha256": [], "none": []}
            to_recording: list[float] = []
            for run in range(args.runs):
                for kind in ("sha256", "none"):
                    status, up = api(base, "POST", "/api/v1/uploads", {
                        "room_id": room, "name": f"bench {run} {kind}",
                        "files": [{"filename": video.name, "size": video.stat().st_size}]}, token)
                    assert status == 201, up
                    took = send(up["files"][0]["upload_url"], token, video, args.chunk_mb * MB, kind == "sha256")
                    results[kind].append(size_mb / took)
                    started = time.monotonic()
                    while api(base, "GET", f"/api/v1/uploads/{up['id']}", token=token)[1]["state"] == "processing":
                        time.sleep(0.05)
                    state = api(base, "GET", f"/api/v1/uploads/{up['id']}", token=token)[1]
                    assert state["state"] == "done", state
                    to_recording.append(time.monotonic() - started)
        finally:
            server.terminate()
            server.wait(30)
    print(f"video: {size_mb:.0f} MiB, PATCH chunks of {args.chunk_mb} MiB, commit every {args.commit_mb:g} MiB, "
          f"{args.runs} runs each (median)")
    print("| path | MB/s |\n|---|---:|")
    print(f"| disk: dd bs=8M conv=fdatasync | {statistics.median(disk_dd):.0f} |")
    print(f"| disk: Python 1 MiB writes, fdatasync every 8 MiB | {statistics.median(disk_py):.0f} |")
    print(f"| tus PATCH with Upload-Checksum sha256 | {statistics.median(results['sha256']):.0f} |")
    print(f"| tus PATCH without checksums | {statistics.median(results['none']):.0f} |")
    print(f"to a recording after the last byte (stream copy into segments, indexed): "
          f"median {statistics.median(to_recording):.1f} s, {size_mb / statistics.median(to_recording):.0f} MB/s")


if __name__ == "__main__":
    main()
