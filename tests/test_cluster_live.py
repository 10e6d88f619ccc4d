"""Live view of cameras on other media servers, direct and relayed, with real processes.

One app server (no media server of its own, SQLite), a private NATS with the permissions
``valt nats-config`` writes, and two ``valt media-server`` processes: ``lan`` serves live view
directly on its own live port and shares the app server's store; ``cloud`` takes no inbound
connection (live port 0), is relayed through the app server over NATS, and keeps its recordings
on its own disk, which the app server reads over the bus for playback, clips and verify.
Chromium plays both cameras on the Observe page; the WebSocket answers are checked byte by
byte: moving video from each, the direct token good only on its own server, one relay
subscription for many viewers, signing out closing a direct viewer at once, and each direct
opening audited by the app server.
"""

from __future__ import annotations

import asyncio
import io
import json
import ssl
import time
import urllib.request

import av
import pytest
import websockets

from .peers.nats import PrivateNats, users_from_nats_config
from .test_browser import ARTIFACTS, browser, sign_in, wait_until  # noqa: F401 - fixture
from .test_cli import Server, free_port, http, run
from .test_cluster import MediaServerProcess, frame_times, get_bytes
from .test_cluster import wait_until as wait_for

SMALL = {"width": 320, "height": 240, "keyframe_interval": 25}
PASSWORD = "boss password"


async def watch(url: str, fragments: int) -> tuple[dict, list[float]]:
    """Open a live WebSocket and read ``fragments`` media fragments: (the init message, video frame times)."""
    async with websockets.connect(url, open_timeout=10, max_size=None) as ws:
        init = json.loads(await asyncio.wait_for(ws.recv(), 15))
        segment = await asyncio.wait_for(ws.recv(), 10)
        media = [await asyncio.wait_for(ws.recv(), 10) for _ in range(fragments)]
    with av.open(io.BytesIO(segment + b"".join(media))) as f:
        video = f.streams.video[0]
        times = [float(p.pts * p.time_base) for p in f.demux(video) if p.pts is not None]
    return init, times


async def close_code(url: str) -> tuple[int, str]:
    """How a live WebSocket that is refused closes: (code, reason)."""
    async with websockets.connect(url, open_timeout=10) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        return ws.close_code, ws.close_reason


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The app server, NATS and the two media servers, with a room of one camera on each (shared by the tests)."""
    tmp_path = tmp_path_factory.mktemp("cluster-live")
    assert run(tmp_path, "db", "upgrade").returncode == 0
    assert run(tmp_path, "user", "add", "boss", "--admin", "--password-stdin", input=PASSWORD + "\n").returncode == 0
    for name, mode in (("lan", "direct"), ("cloud", "relayed"), ("secure", "direct")):
        enrolled = run(tmp_path, "media-server", "add", name, "--seed-file", str(tmp_path / f"{name}.seed"),
                       "--live-mode", mode)
        assert enrolled.returncode == 0, enrolled.stderr
    config = run(tmp_path, "nats-config", "--app-seed-file", str(tmp_path / "app.seed"))
    assert config.returncode == 0, config.stderr
    nats = PrivateNats(tmp_path / "nats", users=users_from_nats_config(config.stdout))
    common = {"VALT_BUS__URL": nats.url, "VALT_STORAGE__OPTIONS__PATH": str(tmp_path / "shared-media")}
    servers: list[MediaServerProcess] = []
    app = None
    try:
        app = Server(tmp_path, "serve", **common, VALT_MEDIA__EMBEDDED="false",
                     VALT_BUS__NKEY_SEED_FILE=str(tmp_path / "app.seed"))
        token = http("POST", app.base + "/api/v1/auth/login", {"username": "boss", "password": PASSWORD})[1]["token"]
        servers.append(MediaServerProcess(tmp_path, "lan", tmp_path / "lan.seed", common, live_port=free_port()))
        # The cloud one keeps its recordings on its own disk: the app server reads them over the bus.
        own = {**common, "VALT_STORAGE__OPTIONS__PATH": str(tmp_path / "cloud-own-media")}
        servers.append(MediaServerProcess(tmp_path, "cloud", tmp_path / "cloud.seed", own, live_port=0))

        def listing():
            return {s["name"]: s for s in http("GET", app.base + "/api/v1/media-servers", token=token)[1]}

        wait_for(lambda: all(listing()[n]["status"] == "online" for n in ("lan", "cloud")), 30, "both servers online")
        ids = {n: s["id"] for n, s in listing().items()}
        room = http("POST", app.base + "/api/v1/rooms", {"name": "Interview 1"}, token)[1]
        cams = {}
        for name in ("lan", "cloud"):
            status, body = http("POST", app.base + "/api/v1/cameras",
                                {"name": f"{name} cam", "driver": "sim", "room_id": room["id"], "config": SMALL,
                                 "media_server_id": ids[name]}, token)
            assert status == 201, body
            cams[name] = body["id"]
        wait_for(lambda: all(http("GET", app.base + f"/api/v1/cameras/{c}", token=token)[1]["status"] == "online"
                             for c in cams.values()), 30, "both cameras online")
        yield (app, token, cams, servers, nats, {**common, "VALT_BUS__NKEY_SEED_FILE": str(tmp_path / "app.seed")},
               tmp_path, (room, common, ids))
    finally:
        for server in servers:
            server.stop()
        if app is not None:
            app.stop()
        nats.stop()
        if servers:
            print("\n".join(f"--- {s.name}\n{s.output()[-1500:]}" for s in servers))


def ws_url(base: str, endpoint: str) -> str:
    """The WebSocket address of a live endpoint (relative ones are on ``base``)."""
    url = endpoint if "://" in endpoint else base + endpoint
    return "ws" + url[len("http"):]


async def test_direct_and_relayed_live_view_across_media_servers(cluster, browser):  # noqa: F811
    app, token, cams, (lan, cloud), nats, _settings, _tmp, _more = cluster
    live = {name: http("GET", app.base + f"/api/v1/cameras/{cid}/live", token=token)[1] for name, cid in cams.items()}
    # Direct: the endpoints are on the lan server's live port; relayed: on the app server.
    assert live["lan"]["live_mode"] == "direct" and live["lan"]["media_server"] == "lan", live["lan"]
    assert live["lan"]["endpoints"]["wss"].startswith(f"http://127.0.0.1:{lan.live_port}/live/{cams['lan']}/ws?"), live
    assert live["cloud"]["live_mode"] == "relayed" and live["cloud"]["endpoints"]["wss"].startswith("/live/"), live

    # Each plays moving video (25 fps: 40 fragments span about 1.6 s), the direct one from the media server.
    direct_url = ws_url(app.base, live["lan"]["endpoints"]["wss"])
    relayed_url = ws_url(app.base, live["cloud"]["endpoints"]["wss"])
    for url in (direct_url, relayed_url):
        init, times = await watch(url, 40)
        assert init["type"] == "init" and "avc1" in init["mime"], init
        assert len(times) >= 40 and 1.2 <= max(times) - min(times) <= 2.5, (url, times[:3], times[-3:])

    # The direct token opens nothing but its camera on its server: not the app server, not the other camera.
    lan_token = live["lan"]["token"]
    code, _ = await close_code(app.base.replace("http", "ws") + f"/live/{cams['lan']}/ws?token={lan_token}")
    assert code == 4401
    code, _ = await close_code(f"ws://127.0.0.1:{lan.live_port}/live/{cams['cloud']}/ws?token={lan_token}")
    assert code == 4403
    # ... and the app server's own tokens do not open the media server.
    code, _ = await close_code(f"ws://127.0.0.1:{lan.live_port}/live/{cams['lan']}/ws?token={live['cloud']['token']}")
    assert code in (4401, 4403)

    # Five viewers of the relayed camera at once all get video, through one subscription of the app server.
    subject = f"valt.live.cloud.{cams['cloud']}"

    def relay_subscriptions() -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{nats.monitor_port}/connz?subs=1", timeout=5) as r:
            conns = json.loads(r.read())["connections"]
        return sum(c.get("subscriptions_list", []).count(subject) for c in conns)

    viewing = [asyncio.create_task(watch(relayed_url, 60)) for _ in range(5)]
    await asyncio.sleep(1.5)
    assert relay_subscriptions() == 1
    results = await asyncio.gather(*viewing)
    assert all(len(times) >= 60 for _, times in results)

    # Chromium plays both on the Observe page (the direct one from another origin the page's CSP allows).
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    await sign_in(page, app.base, PASSWORD, username="boss")
    await page.goto(app.base + "/observe")
    assert await page.locator(".tile video").count() == 2
    await wait_until(page, "[...document.querySelectorAll('.tile video')].every(v => v.currentTime > 1)",
                     timeout=25000)
    before = await page.evaluate("[...document.querySelectorAll('.tile video')].map(v => v.currentTime)")
    await asyncio.sleep(2)
    after = await page.evaluate("[...document.querySelectorAll('.tile video')].map(v => v.currentTime)")
    assert all(b - a > 1.2 for a, b in zip(before, after)), (before, after)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "observe-two-media-servers.png"))
    await page.close()

    # Signing out closes a direct viewer on the media server at once, saying why, and its token stops working.
    signed_in = http("POST", app.base + "/api/v1/auth/login", {"username": "boss", "password": PASSWORD})[1]["token"]
    fresh = http("GET", app.base + f"/api/v1/cameras/{cams['lan']}/live", token=signed_in)[1]
    url = ws_url(app.base, fresh["endpoints"]["wss"])
    async with websockets.connect(url, open_timeout=10, max_size=None) as ws:
        await asyncio.wait_for(ws.recv(), 15)
        assert http("POST", app.base + "/api/v1/auth/logout", None, signed_in)[0] in (200, 204)
        started = time.monotonic()
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert time.monotonic() - started < 3, "the direct viewer outlived its sign-out"
        assert ws.close_code == 4401 and "signed out" in ws.close_reason, (ws.close_code, ws.close_reason)
    code, reason = await close_code(url)
    assert code == 4401 and "signed out" in reason, (code, reason)

    # Every direct opening reached the audit log through the bus, naming the media server.
    def direct_openings():
        events = http("GET", app.base + "/api/v1/audit?action=camera.live.open&limit=200", token=token)[1]["events"]
        return [e for e in events if (e.get("detail") or {}).get("media_server") == "lan"]

    opened = wait_for(direct_openings, 15, "direct openings audited")
    assert all(e["target_id"] in (str(cams["lan"]), cams["lan"]) for e in opened), opened


def test_recordings_on_a_media_servers_own_storage_play_clip_and_verify_through_the_app_server(cluster):
    app, token, cams, (_lan, _cloud), _nats, settings, tmp_path, _more = cluster
    room_id = http("GET", app.base + f"/api/v1/cameras/{cams['cloud']}", token=token)[1]["room_id"]
    status, rec = http("POST", app.base + f"/api/v1/rooms/{room_id}/record/start", None, token)
    assert status == 201, rec
    time.sleep(6)
    status, stopped = http("POST", app.base + f"/api/v1/rooms/{room_id}/record/stop", None, token)
    assert status == 200 and stopped["state"] == "stopped", stopped
    tracks = {t["camera_name"]: t for t in stopped["tracks"]}
    cloud = tracks["cloud cam"]
    # Its segments are on the cloud server's disk only, not in the store the app server shares with lan.
    assert list((tmp_path / "cloud-own-media").rglob(f"track-{cloud['id']}/*.mp4"))
    assert not list((tmp_path / "shared-media").rglob(f"track-{cloud['id']}/*"))
    for track in tracks.values():
        times = frame_times(get_bytes(app.base + f"/api/v1/recordings/{rec['id']}/tracks/{track['id']}/media", token))
        length = track["end_s"] - track["start_s"]
        assert length >= 4.5 and abs(times[-1] - length) < 1.0, (track, times[-1])
    status, clip = http("POST", app.base + f"/api/v1/recordings/{rec['id']}/clips",
                        {"start_s": 1.0, "end_s": 4.0, "track_ids": [cloud["id"]]}, token)
    assert status == 202, clip
    done = wait_for(lambda: (c := http("GET", app.base + f"/api/v1/clips/{clip['id']}", token=token)[1])["state"]
                    in ("done", "failed") and c, 60, "the clip")
    assert done["state"] == "done", done
    times = frame_times(get_bytes(app.base + f"/api/v1/clips/{clip['id']}/download", token))
    assert 2.9 <= times[-1] <= 4.2, times[-1]
    # valt verify reads the cloud track's segments over the bus, and finds them intact.
    verify = run(tmp_path, "verify", str(rec["id"]), **settings)
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
    # ... and tells a segment altered on the media server's disk.
    segment = sorted((tmp_path / "cloud-own-media").rglob(f"track-{cloud['id']}/*.mp4"))[0]
    data = bytearray(segment.read_bytes())
    data[-10] ^= 0xFF
    segment.write_bytes(bytes(data))
    verify = run(tmp_path, "verify", str(rec["id"]), **settings)
    assert verify.returncode == 3 and "content changed" in verify.stdout, verify.stdout + verify.stderr
    # The player's segment list and segments come through the app server as well.
    listing = http("GET", app.base + f"/api/v1/recordings/{rec['id']}/tracks/{cloud['id']}/segments", token=token)[1]
    assert listing["mime_type"].startswith('video/mp4; codecs="avc1.') and listing["segments"], listing
    first = listing["segments"][0]
    assert len(get_bytes(app.base + first["url"], token)) == first["bytes"]
    # Deleting the recording deletes its segments on the media server's own disk too.
    status, _ = http("DELETE", app.base + f"/api/v1/recordings/{rec['id']}", None, token)
    assert status == 204
    assert not list((tmp_path / "cloud-own-media").rglob(f"track-{cloud['id']}/*.mp4"))
    assert http("GET", app.base + f"/api/v1/recordings/{rec['id']}", token=token)[0] == 404


async def bright_share(url: str) -> float:
    """The share of very bright pixels (the sim camera's box, which zoom enlarges) in a live frame."""
    async with websockets.connect(url, open_timeout=10, max_size=None) as ws:
        await asyncio.wait_for(ws.recv(), 15)
        data = [await asyncio.wait_for(ws.recv(), 10) for _ in range(30)]
    with av.open(io.BytesIO(b"".join(data))) as f:
        frames = list(f.decode(video=0))
    luma = frames[-1].to_ndarray(format="gray")
    return float((luma > 215).mean())


async def test_ptz_and_presets_of_a_camera_reach_it_through_its_media_server(cluster):
    app, token, cams, _servers, _nats, _settings, _tmp, _more = cluster
    cam = cams["cloud"]
    live = http("GET", app.base + f"/api/v1/cameras/{cam}/live", token=token)[1]
    url = ws_url(app.base, live["endpoints"]["wss"])
    before = await bright_share(url)
    status, _ = http("POST", app.base + f"/api/v1/cameras/{cam}/ptz",
                     {"action": "absolute", "pan": 0.0, "tilt": 0.0, "zoom": 1.0}, token)
    assert status == 204
    position = http("GET", app.base + f"/api/v1/cameras/{cam}/ptz", token=token)[1]
    assert position["zoom"] == 1.0, position
    # The picture the media server records turned: the command reached the driver there, not a copy here.
    after = await bright_share(url)
    # (At zoom 1 the box is 4 times wider: about 16 % more of a 320x240 picture is bright.)
    assert after - before > 0.1, (before, after)
    status, preset = http("POST", app.base + f"/api/v1/cameras/{cam}/presets", {"name": "door"}, token)
    assert status == 201 and preset["name"] == "door", preset
    http("POST", app.base + f"/api/v1/cameras/{cam}/ptz", {"action": "absolute", "pan": 0, "tilt": 0, "zoom": 0},
         token)
    presets = http("GET", app.base + f"/api/v1/cameras/{cam}/presets", token=token)[1]
    assert [p["name"] for p in presets] == ["door"], presets
    status, _ = http("POST", app.base + f"/api/v1/cameras/{cam}/ptz", {"action": "goto_preset",
                                                                     "preset": preset["token"]}, token)
    assert status == 204
    assert http("GET", app.base + f"/api/v1/cameras/{cam}/ptz", token=token)[1]["zoom"] == 1.0
    # A snapshot is the driver's there too: a JPEG of the zoomed picture.
    jpeg = get_bytes(app.base + f"/api/v1/cameras/{cam}/snapshot", token)
    assert jpeg[:2] == b"\xff\xd8"
    with av.open(io.BytesIO(jpeg)) as f:
        luma = next(f.decode(video=0)).to_ndarray(format="gray")
    assert float((luma > 215).mean()) - before > 0.1


async def test_the_live_port_follows_the_tls_switch(cluster):
    app, token, _cams, servers, _nats, _settings, tmp_path, (room, common, ids) = cluster
    port = free_port()
    secure = MediaServerProcess(tmp_path, "secure", tmp_path / "secure.seed", {**common, "VALT_SERVER__TLS": "true"},
                                live_port=port)
    servers.append(secure)  # stopped with the others
    status, cam = http("POST", app.base + "/api/v1/cameras", {"name": "secure cam", "driver": "sim",
                                                              "room_id": room["id"], "config": SMALL,
                                                              "media_server_id": ids["secure"]}, token)
    assert status == 201, cam
    wait_for(lambda: http("GET", app.base + f"/api/v1/cameras/{cam['id']}", token=token)[1]["status"] == "online",
             30, "the camera on the TLS media server online")
    live = wait_for(lambda: (a := http("GET", app.base + f"/api/v1/cameras/{cam['id']}/live", token=token)[1])
                    ["live_mode"] == "direct" and a, 15, "a direct live answer")
    endpoint = live["endpoints"]["wss"]
    assert endpoint.startswith(f"https://127.0.0.1:{port}/live/"), live
    # The page policy lets the browser reach it over WSS.
    page = urllib.request.urlopen(app.base + "/login", timeout=5)
    assert f"wss://127.0.0.1:{port}" in page.headers["Content-Security-Policy"]
    # A TLS client that trusts the media server's certificate (self-signed in its data directory) plays.
    trust = ssl.create_default_context(cafile=str(secure.data / "tls" / "cert.pem"))
    url = "wss" + endpoint[len("https"):]
    async with websockets.connect(url, ssl=trust, open_timeout=10, max_size=None) as ws:
        init = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert init["type"] == "init"
        segment = await asyncio.wait_for(ws.recv(), 10)
        media = [await asyncio.wait_for(ws.recv(), 10) for _ in range(30)]
    with av.open(io.BytesIO(segment + b"".join(media))) as f:
        assert sum(1 for p in f.demux(video=0) if p.pts is not None) >= 30
    # Plain WebSocket to the TLS port gets nowhere, and the certificate is checked.
    with pytest.raises((websockets.InvalidMessage, websockets.InvalidHandshake, OSError, asyncio.TimeoutError)):
        await websockets.connect("ws" + endpoint[len("https"):], open_timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        await websockets.connect(url, ssl=ssl.create_default_context(), open_timeout=5)


def test_a_camera_given_to_a_pool_goes_to_its_least_loaded_present_server(cluster):
    app, token, _cams, _servers, _nats, _settings, _tmp, (room, _common, ids) = cluster
    body = {"name": "pooled cam", "driver": "sim", "room_id": room["id"], "config": SMALL, "media_server_pool": ""}
    listing = {s["name"]: s for s in http("GET", app.base + "/api/v1/media-servers", token=token)[1]}
    fewest = min(len(s["cameras"]) for n, s in listing.items() if s["status"] == "online" and n != "local")
    status, cam = http("POST", app.base + "/api/v1/cameras", body, token)
    assert status == 201, cam
    chosen = next(n for n, i in ids.items() if i == cam["media_server_id"])
    assert listing[chosen]["status"] == "online" and len(listing[chosen]["cameras"]) == fewest, (chosen, listing)
    status, err = http("POST", app.base + "/api/v1/cameras", {**body, "name": "nowhere", "media_server_pool": "b"},
                       token)
    assert status == 409 and "pool 'b'" in err["message"], err
    status, err = http("POST", app.base + "/api/v1/cameras", {**body, "name": "both", "media_server_id": ids["lan"]},
                       token)
    assert status == 400, err
    assert http("DELETE", app.base + f"/api/v1/cameras/{cam['id']}", None, token)[0] == 204
