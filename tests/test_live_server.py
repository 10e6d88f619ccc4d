"""Live view through a real server and real sockets: a stalled viewer slows nobody else."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time

import av
import websockets

from .test_cli import Server, http


def tiny_socket(port: int) -> socket.socket:
    """A client socket with a tiny receive buffer, so a viewer that stops reading pushes back."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s


async def read_frames(ws, count: int) -> tuple[list[float], bytes, list[bytes]]:
    init = json.loads(await ws.recv())
    assert init["type"] == "init"
    init_segment = await ws.recv()
    arrivals, media = [], []
    while len(media) < count:
        media.append(await ws.recv())
        arrivals.append(time.monotonic())
    return arrivals, init_segment, media


def first_camera_live_url(server) -> tuple[str, str]:
    """(the demo admin's token, the wss URL of the demo's first camera)."""
    token = http("POST", server.base + "/api/v1/auth/login",
                 {"username": "admin", "password": "live demo pw"})[1]["token"]
    cam_id = http("GET", server.base + "/api/v1/cameras", token=token)[1][0]["id"]
    path = http("GET", server.base + f"/api/v1/cameras/{cam_id}/live", token=token)[1]["endpoints"]["wss"]
    return token, f"ws://127.0.0.1:{server.port}{path}"


def test_a_stalled_viewer_skips_gops_and_slows_nobody(tmp_path):
    # Small socket buffers, so 10 s of stall reach the server's queue instead of kernel buffers.
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD="live demo pw", VALT_SERVER__SEND_BUFFER_KB="16")
    try:
        token, url = first_camera_live_url(server)

        async def scenario():
            async with websockets.connect(url, max_size=None) as reader, \
                    websockets.connect(url, sock=tiny_socket(server.port), max_size=None,
                                       max_queue=1) as stalled:
                await read_frames(reader, 10)
                # The client offered permessage-deflate (websockets does, as browsers do); the
                # server declines it: video does not compress, and deflating costs CPU per viewer.
                assert "permessage-deflate" in reader.request.headers.get("Sec-WebSocket-Extensions", "")
                assert reader.response.headers.get("Sec-WebSocket-Extensions") is None
                # `stalled` reads nothing for 10 s while `reader` keeps watching.
                arrivals, _init, _media = await read_frames_timed(reader, 10.0)
                gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:]))
                # Then the stalled one reads again: after what was still in buffers, it must have
                # skipped whole GOPs rather than replay 10 s of backlog.
                _, init_segment, media = await read_frames(stalled, 600)
                # Signing out ends both streams at once, and the close says why in words.
                http("POST", server.base + "/api/v1/auth/logout", token=token)
                for ws in (reader, stalled):
                    try:
                        async with asyncio.timeout(5):
                            while True:
                                await ws.recv()
                    except websockets.ConnectionClosed as closed:
                        assert closed.rcvd.code == 4401 and closed.rcvd.reason == "signed out", closed
                return gaps, init_segment, media

        gaps, init_segment, media = asyncio.run(scenario())
    finally:
        server.stop()
    p99 = gaps[int(len(gaps) * 0.99) - 1]
    assert p99 < 0.2, f"the watching viewer was held up: p99 gap {p99:.3f} s"
    assert len(gaps) > 10 * 25
    # What the stalled viewer got after resuming still decodes from a keyframe, and its pictures
    # jump forward in time (GOPs were skipped) instead of replaying 10 s of backlog.
    from valt_camera_sim.clock import clock_seconds, read_clock

    with av.open(io.BytesIO(init_segment + b"".join(media))) as f:
        clocks = [clock_seconds(read_clock(fr.to_ndarray(format="gray"))) for fr in f.decode(video=0)]
    assert len(clocks) >= 40
    assert max(b - a for a, b in zip(clocks, clocks[1:])) > 2.0


async def read_frames_timed(ws, seconds: float):
    arrivals, media = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        media.append(await ws.recv())
        arrivals.append(time.monotonic())
    return arrivals, None, media


def test_the_server_stops_promptly_while_live_views_are_open(tmp_path):
    """SIGTERM with live viewers connected ends them and the server (Python 3.12's listener
    shutdown waits for every open connection, and a live view never ends by itself)."""
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD="live demo pw")
    _token, url = first_camera_live_url(server)

    async def scenario():
        async with websockets.connect(url, max_size=None) as first, websockets.connect(url, max_size=None) as second:
            await read_frames(first, 3)
            await read_frames(second, 3)
            started = time.monotonic()
            server.proc.terminate()
            for ws in (first, second):
                try:
                    async with asyncio.timeout(10):  # a view the server does not end would stream on
                        while True:
                            await ws.recv()
                except websockets.ConnectionClosed as closed:
                    assert closed.rcvd is not None and "stopping" in closed.rcvd.reason
            return started

    try:
        started = asyncio.run(scenario())
        assert server.proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 10, "the server took too long to stop"
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
