"""Live HLS read by FFmpeg's HLS client (through PyAV) from a real server, behind the same tokens."""

from __future__ import annotations

import urllib.error
import urllib.request

import av

from .test_cli import Server, http


def test_hls_playlist_plays_in_an_hls_client_and_needs_a_token(tmp_path):
    from valt_camera_sim.clock import clock_seconds, read_clock

    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD="hls demo pw")
    try:
        token = http("POST", server.base + "/api/v1/auth/login",
                     {"username": "admin", "password": "hls demo pw"})[1]["token"]
        cams = http("GET", server.base + "/api/v1/cameras", token=token)[1]
        live = http("GET", server.base + f"/api/v1/cameras/{cams[0]['id']}/live", token=token)[1]
        hls = live["endpoints"]["hls"]
        assert hls.startswith(f"/live/{cams[0]['id']}/hls/index.m3u8?token=")
        with urllib.request.urlopen(server.base + hls, timeout=20) as r:
            playlist = r.read().decode()
            assert r.headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
        assert playlist.startswith("#EXTM3U") and "#EXT-X-MAP:URI=" in playlist and ".m4s?token=" in playlist

        clocks = []
        with av.open(server.base + hls, options={"live_start_index": "0"}, timeout=20) as f:
            video = f.streams.video[0]
            assert video.codec_context.name == "h264"
            assert f.streams.audio and f.streams.audio[0].codec_context.name == "aac"
            for frame in f.decode(video=0):
                clocks.append(clock_seconds(read_clock(frame.to_ndarray(format="gray"))))
                if len(clocks) >= 75:
                    break
        assert all(b > a for a, b in zip(clocks, clocks[1:]))
        assert clocks[-1] - clocks[0] >= 2.5  # 3 s of moving, in-order video

        for path, code in [(f"/live/{cams[0]['id']}/hls/index.m3u8", 401),
                           (hls.replace(f"/live/{cams[0]['id']}/", f"/live/{cams[1]['id']}/"), 403)]:
            try:
                urllib.request.urlopen(server.base + path, timeout=10)
                raise AssertionError(f"{path} answered without a valid token")
            except urllib.error.HTTPError as err:
                assert err.code == code
    finally:
        server.stop()
