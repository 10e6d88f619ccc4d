"""A phone publishing to a ``valt media-server`` that has no database: the stream key is checked there
against the hash it was given with its cameras, a refusal reaches the app server over NATS (and is
audited there), and the accepted publish is recorded."""

from __future__ import annotations

import json

from .peers.mobile_sim import FfmpegPublisher
from .peers.nats import PrivateNats, users_from_nats_config
from .test_cli import Server, free_port, http, run
from .test_cluster import MediaServerProcess, wait_until


def test_a_device_on_a_media_server_is_checked_there_refusals_are_audited_by_the_app(tmp_path):
    assert run(tmp_path, "db", "upgrade").returncode == 0
    assert run(tmp_path, "user", "add", "boss", "--admin", "--password-stdin", input="boss password\n").returncode == 0
    assert run(tmp_path, "media-server", "add", "ms1", "--seed-file", str(tmp_path / "ms1.seed")).returncode == 0
    config = run(tmp_path, "nats-config", "--app-seed-file", str(tmp_path / "app.seed"))
    assert config.returncode == 0, config.stderr
    nats = PrivateNats(tmp_path / "nats", users=users_from_nats_config(config.stdout))
    rtmp = free_port()
    common = {"VALT_BUS__URL": nats.url, "VALT_STORAGE__OPTIONS__PATH": str(tmp_path / "media"),
              "VALT_MEDIA__SEGMENT_SECONDS": "2"}
    app = ms1 = None
    publishers = []
    try:
        app = Server(tmp_path, "serve", **common, VALT_MEDIA__EMBEDDED="false",
                     VALT_BUS__NKEY_SEED_FILE=str(tmp_path / "app.seed"))
        ms1 = MediaServerProcess(tmp_path, "ms1", tmp_path / "ms1.seed", {
            **common, "VALT_LIVE__TRANSPORT_OPTIONS": json.dumps({"rtmp": {"port": rtmp, "host": "127.0.0.1"}})})
        base = app.base
        token = http("POST", base + "/api/v1/auth/login", {"username": "boss", "password": "boss password"})[1]["token"]
        wait_until(lambda: any(s["name"] == "ms1" and s["status"] == "online"
                               for s in http("GET", base + "/api/v1/media-servers", token=token)[1]), 30, "ms1 online")
        server_id = next(s["id"] for s in http("GET", base + "/api/v1/media-servers", token=token)[1]
                         if s["name"] == "ms1")
        room = http("POST", base + "/api/v1/rooms", {"name": "Outreach"}, token)[1]
        status, dev = http("POST", base + "/api/v1/devices", {"name": "Van tablet", "room_id": room["id"]}, token)
        assert status == 201, dev
        # The app server has no media server of its own, so it knows no publish URL to give.
        assert dev["publish_urls"] == []
        status, cam = http("PATCH", base + f"/api/v1/cameras/{dev['camera_id']}", {"media_server_id": server_id},
                           token)
        assert status == 200, cam

        def camera():
            return http("GET", base + f"/api/v1/cameras/{dev['camera_id']}", token=token)[1]
        wait_until(lambda: camera()["status_reason"] == "waiting for the device to publish", 20, "ms1 waiting")

        url = f"rtmp://127.0.0.1:{rtmp}/live/"
        wrong = FfmpegPublisher(url + "not-the-key", seconds=2, size="320x240").start()
        publishers.append(wrong)
        assert wrong.wait(20) != 0

        def refusals():
            events = http("GET", base + "/api/v1/audit?action=device.publish.refused", token=token)[1]
            return [e for e in events["events"] if e["action"] == "device.publish.refused"]
        (refused,) = wait_until(refusals, 15, "the refusal audited by the app server")
        assert refused["detail"]["reason"] == "wrong key" and refused["detail"]["media_server"] == "ms1"
        assert "not-the-key" not in json.dumps(refused) and "not-the-key" not in ms1.output()

        good = FfmpegPublisher(url + dev["stream_key"], seconds=30, size="320x240").start()
        publishers.append(good)
        wait_until(lambda: camera()["status"] == "online", 20, "the device online on ms1")
        status, rec = http("POST", base + f"/api/v1/rooms/{room['id']}/record/start", None, token)
        assert status == 201, rec
        wait_until(lambda: http("GET", base + f"/api/v1/recordings/{rec['id']}", token=token)[1]["tracks"][0]
                   ["duration_s"] >= 2, 20, "two seconds recorded on ms1")
        status, rec = http("POST", base + f"/api/v1/rooms/{room['id']}/record/stop", None, token)
        assert status == 200 and rec["tracks"][0]["duration_s"] >= 2 and rec["tracks"][0]["video_codec"] == "h264"
        assert dev["stream_key"] not in ms1.output() and dev["stream_key"] not in app.output()
    finally:
        for pub in publishers:
            pub.stop()
        if ms1 is not None:
            ms1.stop()
        if app is not None:
            app.stop()
        nats.stop()
