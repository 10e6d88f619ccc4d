"""Uploading offline recordings over tus 1.0: resumed after a cut and a restart, checked, refused.

Two clients send the videos: tuspy (PyPI) and a plain tus client written here against the
protocol (:class:`PlainTus`, http.client). The journey runs against a real ``valt serve``
process, restarted in the middle; the rules (rights, other users, quotas, expiry, refusals)
run in-process on SQLite and MariaDB.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client as httpclient
import io
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import av
import pytest

from .test_cli import Server, http, run

MB = 1024 * 1024


def _ffmpeg(out: Path, *args: str) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.fail("the ffmpeg CLI is needed to make the upload tests' videos (scripts/peers installs it)")
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args, str(out)], check=True, timeout=120)
    return out


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    """A ~100 MB H.264 video (lossless noise: big quickly) and a small one with AAC, 3 s later."""
    d = tmp_path_factory.mktemp("videos")
    big = _ffmpeg(d / "room-cam.mp4", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "9.2",
                  "-vf", "noise=alls=60:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "50",
                  "-metadata", "creation_time=2026-12-01T10:00:00Z")
    small = _ffmpeg(d / "phone.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=48000", "-t", "6", "-c:v", "libx264", "-preset", "ultrafast",
                    "-g", "25", "-c:a", "aac", "-metadata", "creation_time=2026-12-01T10:00:03Z")
    text = d / "notes.mp4"
    text.write_text("This is a text file renamed .mp4, not a video.\n" * 200)
    return {"big": big, "small": small, "text": text}


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MB):
            h.update(block)
    return h.hexdigest()


class PlainTus:
    """A tus 1.0 client written against the protocol: HEAD, PATCH with sha256 checksums, DELETE."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path
        self.headers = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"}

    def _conn(self) -> httpclient.HTTPConnection:
        return httpclient.HTTPConnection(self.host, self.port, timeout=30)

    def offset(self) -> int:
        """The server's offset (HEAD)."""
        conn = self._conn()
        conn.request("HEAD", self.path, headers=self.headers)
        r = conn.getresponse()
        r.read()
        conn.close()
        assert r.status == 200, r.status
        assert r.getheader("Tus-Resumable") == "1.0.0"
        return int(r.getheader("Upload-Offset"))

    def patch(self, offset: int, data: bytes, checksum: bytes | None = None) -> tuple[int, dict, bytes]:
        """Send ``data`` at ``offset``; ``checksum`` overrides the chunk's true SHA-256."""
        digest = checksum if checksum is not None else hashlib.sha256(data).digest()
        headers = {**self.headers, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
                   "Upload-Checksum": "sha256 " + base64.b64encode(digest).decode()}
        conn = self._conn()
        conn.request("PATCH", self.path, body=data, headers=headers)
        r = conn.getresponse()
        body = r.read()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def cut(self, offset: int, data: bytes, sent: int) -> None:
        """Start a PATCH of ``data`` (no checksum) and drop the connection after ``sent`` bytes."""
        conn = self._conn()
        conn.putrequest("PATCH", self.path)
        for k, v in {**self.headers, "Upload-Offset": str(offset), "Content-Length": str(len(data)),
                     "Content-Type": "application/offset+octet-stream"}.items():
            conn.putheader(k, v)
        conn.endheaders()
        conn.send(data[:sent])
        time.sleep(0.5)  # let the server write what arrived
        conn.sock.close()

    def send_all(self, path: Path, chunk: int) -> None:
        """Send the rest of the file from the server's offset, in chunks."""
        size = path.stat().st_size
        with open(path, "rb") as f:
            offset = self.offset()
            while offset < size:
                f.seek(offset)
                status, headers, body = self.patch(offset, f.read(chunk))
                assert status == 204, (status, body)
                offset = int(headers["upload-offset"])


def _tuspy_uploader(path: Path, url: str, token: str, chunk: int, upload_url: str | None = None):
    from tusclient import client
    from tusclient.uploader import Uploader

    class Sha256Uploader(Uploader):
        # tuspy sends sha1 by default; the protocol lets a client pick any the server offers.
        CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)

    tus = client.TusClient(url, headers={"Authorization": f"Bearer {token}"})
    return Sha256Uploader(file_path=str(path), client=tus, chunk_size=chunk, url=upload_url, upload_checksum=True,
                          metadata={"filename": path.name, "sha256": sha256_of(path)}, retries=2, retry_delay=0.2)


def _wait_done(base: str, upload_id: int, token: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, up = http("GET", f"{base}/api/v1/uploads/{upload_id}", token=token)
        assert status == 200, up
        if up["state"] not in ("open", "processing"):
            return up
        time.sleep(0.2)
    raise AssertionError(f"upload {upload_id} still {up['state']}")


def test_two_clients_upload_across_a_cut_and_a_restart_into_one_playable_recording(tmp_path, videos):
    env = {"VALT_MEDIA__SEGMENT_SECONDS": "4", "VALT_UPLOADS__COMMIT_EVERY_MB": "1", "VALT_MEDIA__MIN_FREE_MB": "0",
           "VALT_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]'}
    assert run(tmp_path, "db", "upgrade", **env).returncode == 0
    assert run(tmp_path, "user", "add", "otto", "--role", "operator", "--password-stdin",
               input="otto password\n", **env).returncode == 0
    assert run(tmp_path, "user", "add", "boss", "--admin", "--password-stdin", input="boss password\n",
               **env).returncode == 0
    server = Server(tmp_path, "serve", **env)
    try:
        boss = http("POST", server.base + "/api/v1/auth/login", {"username": "boss", "password": "boss password"})[1]
        room = http("POST", server.base + "/api/v1/rooms", {"name": "Field"}, boss["token"])[1]
        token = http("POST", server.base + "/api/v1/auth/login",
                     {"username": "otto", "password": "otto password"})[1]["token"]
        big, small = videos["big"], videos["small"]
        # Behind a trusted proxy that ends TLS, the addresses handed out are the https:// ones.
        req = urllib.request.Request(server.base + "/api/v1/uploads", method="POST", data=json.dumps(
            {"room_id": room["id"], "files": [{"filename": "x.mp4", "size": 10}]}).encode(), headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json", "X-Forwarded-Proto": "https"})
        with urllib.request.urlopen(req, timeout=10) as r:
            proxied = json.loads(r.read())
        assert proxied["files"][0]["upload_url"].startswith("https://127.0.0.1:")
        assert http("DELETE", f"{server.base}/api/v1/uploads/{proxied['id']}", token=token)[0] == 204
        # Step one: the session and its two videos.
        status, up = http("POST", server.base + "/api/v1/uploads", {
            "name": "Home visit", "room_id": room["id"], "information": {"Case": "42"},
            "shares": [{"user_id": boss["user"]["id"], "can_download": True}],
            "files": [{"filename": big.name, "size": big.stat().st_size, "sha256": sha256_of(big)},
                      {"filename": small.name, "size": small.stat().st_size}]}, token)
        assert status == 201, up
        big_url = up["files"][0]["upload_url"]
        assert big_url.startswith(server.base + "/api/v1/uploads/files/")  # absolute
        plain = PlainTus(big_url, token)
        data = big.read_bytes()
        assert len(data) >= 95 * MB
        # A latin-1 "²" is a digit to str.isdigit() but no number to int(): a 400, not a 500.
        conn = httpclient.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.putrequest("PATCH", urlsplit(big_url).path)
        for k, v in {**plain.headers, "Content-Type": "application/offset+octet-stream", "Content-Length": "1"}.items():
            conn.putheader(k, v)
        conn.putheader("Upload-Offset", b"\xb2")
        conn.endheaders(b"x")
        answer = conn.getresponse()
        assert answer.status == 400 and b"Upload-Offset" in answer.read()
        conn.close()
        # The plain client: a first chunk, a corrupt one (refused, nothing appended), then again.
        status, headers, _ = plain.patch(0, data[:8 * MB])
        assert status == 204 and headers["upload-offset"] == str(8 * MB)
        status, headers, body = plain.patch(8 * MB, data[8 * MB:16 * MB], checksum=hashlib.sha256(b"x").digest())
        assert status == 460, (status, body)
        assert "Upload-Checksum" in json.loads(body)["message"]
        assert plain.offset() == 8 * MB
        status, headers, _ = plain.patch(8 * MB, data[8 * MB:16 * MB])
        assert status == 204
        # The connection drops in the middle of a 20 MB PATCH: the server keeps what it committed.
        plain.cut(16 * MB, data[16 * MB:36 * MB], sent=9 * MB)
        resumed_at = plain.offset()
        assert 16 * MB + 5 * MB <= resumed_at <= 16 * MB + 9 * MB, resumed_at
        # tuspy: creation on the upload, a few chunks, then the server restarts.
        tus_url = f"{server.base}/api/v1/uploads/{up['id']}/files"
        uploader = _tuspy_uploader(small, tus_url, token, chunk=256 * 1024)
        uploader.upload(stop_at=512 * 1024)
        assert uploader.url == up["files"][1]["upload_url"]
        assert server.stop() == 0
        server = Server(tmp_path, "serve", **env)
        token = http("POST", server.base + "/api/v1/auth/login",
                     {"username": "otto", "password": "otto password"})[1]["token"]
        plain = PlainTus(big_url.replace(urlsplit(big_url).netloc, urlsplit(server.base).netloc), token)
        assert plain.offset() == resumed_at  # the offset survived the restart
        plain.send_all(big, chunk=16 * MB)
        status, up_now = http("GET", f"{server.base}/api/v1/uploads/{up['id']}", token=token)
        assert up_now["state"] == "open" and up_now["files"][0]["complete"]
        resumed = _tuspy_uploader(small, tus_url, token, chunk=1 * MB,
                                  upload_url=up_now["files"][1]["upload_url"])
        assert resumed.get_offset() == 512 * 1024
        resumed.upload()

        done = _wait_done(server.base, up["id"], token)
        assert done["state"] == "done", done
        assert [f["sha256"] for f in done["files"]] == [sha256_of(big), sha256_of(small)]
        status, rec = http("GET", f"{server.base}/api/v1/recordings/{done['recording_id']}", token=token)
        assert status == 200, rec
        assert rec["name"] == "Home visit" and rec["state"] == "stopped" and rec["room_id"] == room["id"]
        assert "Case: 42" in rec["notes"]
        tracks = {t["camera_name"]: t for t in rec["tracks"]}
        assert tracks[big.name]["segments"] >= 2 and tracks[big.name]["video_codec"] == "h264"
        # Aligned by the files' creation times: the phone started 3 s after the room camera.
        assert tracks[big.name]["start_s"] == 0.0
        assert abs(tracks[small.name]["start_s"] - 3.0) < 0.05
        assert tracks[small.name]["audio_codec"] == "aac"
        for name, seconds in ((big.name, 9.2), (small.name, 6.0)):
            track = tracks[name]
            assert abs(track["duration_s"] - seconds) < 0.2, track
            req = urllib.request.Request(
                f"{server.base}/api/v1/recordings/{rec['id']}/tracks/{track['id']}/media",
                headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=60) as r:
                media = r.read()
            with av.open(io.BytesIO(media)) as f:
                frames = sum(1 for _ in f.decode(video=0))
            assert abs(frames - 25 * seconds) <= 2, (name, frames)
        # Shared as asked; the bytes under the data dir are gone; the chain verifies.
        status, shared = http("GET", f"{server.base}/api/v1/recordings/{rec['id']}/shares", token=boss_token(server))
        assert status == 200 and any(s["user_id"] == boss["user"]["id"] and s["can_download"] for s in shared), shared
        assert not (tmp_path / "data" / "uploads" / str(up["id"])).exists()
    finally:
        server.stop()
    verify = run(tmp_path, "verify", str(rec["id"]), **env)
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr


def boss_token(server: Server) -> str:
    """A fresh admin token on ``server``."""
    login = {"username": "boss", "password": "boss password"}
    return http("POST", server.base + "/api/v1/auth/login", login)[1]["token"]


# --- the rules, in-process ---------------------------------------------------------------------


async def _room(env, admin: str) -> int:
    r = await env.client.post("/api/v1/rooms", json={"name": "Field"}, headers=env.bearer(admin))
    assert r.status_code == 201
    return (await r.get_json())["id"]


def _tus(token: str, offset: int, data: bytes, digest: bytes | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
               "Content-Type": "application/offset+octet-stream"}
    if digest is not None:
        headers["Upload-Checksum"] = "sha256 " + base64.b64encode(digest).decode()
    return headers


async def test_rights_other_users_quota_expiry_and_a_text_file_leave_nothing(env_factory, videos, tmp_path):
    env = await env_factory()
    env.ctx.settings.uploads.quota_mb = 1.0
    admin = await env.user("root", "admin")
    otto = await env.user("otto", "operator")
    olga = await env.user("olga", "operator")
    viewer = await env.user("vic", "viewer")
    room = await _room(env, admin)
    text = videos["text"].read_bytes()
    # The declared SHA-256 is right: the refusal below is for what the file is, not its hash.
    new = {"room_id": room, "files": [{"filename": "notes.mp4", "size": len(text),
                                       "sha256": hashlib.sha256(text).hexdigest()}]}

    # No right: 403. Over the quota: 413, naming it.
    r = await env.client.post("/api/v1/uploads", json=new, headers=env.bearer(viewer))
    assert r.status_code == 403
    r = await env.client.post("/api/v1/uploads", json={**new, "files": [{"filename": "big.mp4", "size": 2 * MB}]},
                              headers=env.bearer(otto))
    assert r.status_code == 413 and "quota" in (await r.get_json())["message"]
    r = await env.client.post("/api/v1/uploads", json=new, headers=env.bearer(otto))
    assert r.status_code == 201
    up = await r.get_json()
    file_path = f"/api/v1/uploads/files/{up['files'][0]['id']}"
    # Another user's upload does not exist for them.
    for method in ("GET", "PATCH", "DELETE"):
        r = await env.client.open(file_path, method=method, headers=_tus(olga, 0, b""), data=b"")
        assert r.status_code == 404, method
    r = await env.client.get(f"/api/v1/uploads/{up['id']}", headers=env.bearer(olga))
    assert r.status_code == 404
    # A body without the tus version is refused (412); so is a wrong checksum (460, nothing kept).
    r = await env.client.patch(file_path, data=text, headers={**_tus(otto, 0, text), "Tus-Resumable": "0.2"})
    assert r.status_code == 412
    for offset in ("-1", "1e3", "", " 1"):
        r = await env.client.patch(file_path, data=text[:10], headers={**_tus(otto, 0, text[:10]),
                                                                       "Upload-Offset": offset})
        assert r.status_code == 400 and "Upload-Offset" in (await r.get_json())["message"], offset
    r = await env.client.patch(file_path, data=text[:100], headers=_tus(otto, 0, text[:100], b"\0" * 32))
    assert r.status_code == 460
    r = await env.client.head(file_path, headers=_tus(otto, 0, b""))
    assert r.headers["Upload-Offset"] == "0" and r.headers["Tus-Resumable"] == "1.0.0"

    # A text file renamed .mp4: refused when its last byte is in, and nothing of it is left.
    recordings_before = (await (await env.client.get("/api/v1/recordings", headers=env.bearer(admin))).get_json())
    r = await env.client.patch(file_path, data=text, headers=_tus(otto, 0, text, hashlib.sha256(text).digest()))
    assert r.status_code == 422, await r.get_data(as_text=True)
    assert "not a video" in (await r.get_json())["message"]
    got = await (await env.client.get(f"/api/v1/uploads/{up['id']}", headers=env.bearer(otto))).get_json()
    assert got["state"] == "failed" and "not a video" in got["error"] and got["recording_id"] is None
    assert not (env.ctx.settings.data_dir / "uploads" / str(up["id"])).exists()
    recordings_after = (await (await env.client.get("/api/v1/recordings", headers=env.bearer(admin))).get_json())
    assert recordings_after == recordings_before
    media_root = env.ctx.settings.data_dir / "media"
    assert not any(p.is_file() for p in media_root.rglob("*")) if media_root.exists() else True

    # A whole file that is not the SHA-256 declared is refused at its last byte, leaving nothing.
    small = videos["small"].read_bytes()
    r = await env.client.post("/api/v1/uploads", json={"room_id": room, "files": [
        {"filename": "phone.mp4", "size": len(small), "sha256": hashlib.sha256(b"other").hexdigest()}]},
        headers=env.bearer(otto))
    up = await r.get_json()
    file_path = f"/api/v1/uploads/files/{up['files'][0]['id']}"
    half = len(small) // 2
    r = await env.client.patch(file_path, data=small[:half], headers=_tus(otto, 0, small[:half]))
    assert r.status_code == 204
    r = await env.client.patch(file_path, data=small[half:], headers=_tus(otto, half, small[half:]))
    assert r.status_code == 422 and "SHA-256" in (await r.get_json())["message"]
    assert not (env.ctx.settings.data_dir / "uploads" / str(up["id"])).exists()
    r = await env.client.head(file_path, headers=_tus(otto, 0, b""))
    assert r.status_code == 410

    # Over the size limit: refused before a byte is sent, naming the setting.
    env.ctx.settings.uploads.max_file_mb = 0.5
    r = await env.client.post("/api/v1/uploads", json={"room_id": room, "files": [
        {"filename": "long.mp4", "size": MB}]}, headers=env.bearer(otto))
    assert r.status_code == 413 and "max_file_mb" in (await r.get_json())["message"]
    env.ctx.settings.uploads.max_file_mb = 20480

    # creation-with-upload, then termination: the bytes go, and so does the upload.
    r = await env.client.post("/api/v1/uploads", json={"room_id": room, "files": [
        {"filename": "y.mp4", "size": 1000}]}, headers=env.bearer(otto))
    up = await r.get_json()
    meta = "filename " + base64.b64encode(b"y.mp4").decode()
    r = await env.client.post(f"/api/v1/uploads/{up['id']}/files", data=b"b" * 300, headers={
        **_tus(otto, 0, b""), "Upload-Length": "1000", "Upload-Metadata": meta})
    assert r.status_code == 201, await r.get_data(as_text=True)
    assert r.headers["Location"] == f"http://localhost/api/v1/uploads/files/{up['files'][0]['id']}"
    assert r.headers["Upload-Offset"] == "300"
    part = env.ctx.uploads.path_of(up["id"], up["files"][0]["id"])
    assert part.stat().st_size == 300
    r = await env.client.delete(urlsplit(r.headers["Location"]).path, headers=_tus(otto, 0, b""))
    assert r.status_code == 204
    assert not part.exists()
    r = await env.client.get(f"/api/v1/uploads/{up['id']}", headers=env.bearer(otto))
    assert r.status_code == 404

    # Each step is in the audit log: who created and cancelled, and why uploads were refused.
    r = await env.client.get("/api/v1/audit?action=upload", headers=env.bearer(admin))
    events = (await r.get_json())["events"]
    actions = [e["action"] for e in events]
    assert sorted(actions) == ["upload.cancel"] + ["upload.create"] * 3 + ["upload.refused"] * 2, actions
    assert any("not a video" in e["detail"]["reason"] for e in events if e["action"] == "upload.refused")

    # Expiry: an unfinished upload's bytes go, and it answers 410 from then on.
    env.ctx.settings.uploads.expire_hours = 0.5 / 3600
    r = await env.client.post("/api/v1/uploads", json={"room_id": room,
                                                       "files": [{"filename": "x.mp4", "size": 1000}]},
                              headers=env.bearer(otto))
    up = await r.get_json()
    file_path = f"/api/v1/uploads/files/{up['files'][0]['id']}"
    r = await env.client.patch(file_path, data=b"a" * 400, headers=_tus(otto, 0, b""))
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "400" and "Upload-Expires" in r.headers
    part = env.ctx.uploads.path_of(up["id"], up["files"][0]["id"])
    assert part.stat().st_size == 400
    await asyncio.sleep(0.6)
    r = await env.client.head(file_path, headers=_tus(otto, 0, b""))
    assert r.status_code == 410  # past its time already, before the sweep removes its bytes
    assert await env.ctx.uploads.expire() == 1
    assert not part.exists()
    r = await env.client.patch(file_path, data=b"a" * 100, headers=_tus(otto, 400, b""))
    assert r.status_code == 410
    got = await (await env.client.get(f"/api/v1/uploads/{up['id']}", headers=env.bearer(otto))).get_json()
    assert got["state"] == "expired"


# --- pure logic: the protocol's headers and what a file must be ------------------------------


def test_tus_headers_are_parsed_as_the_protocol_writes_them():
    from valt_core.api.uploads import parse_checksum, parse_metadata
    from valt_core.errors import ValidationFailed

    b64 = base64.b64encode
    name = b64("café.mp4".encode()).decode()
    assert parse_metadata(f"filename {name},is_confidential") == {
        "filename": "café.mp4", "is_confidential": ""}
    digest = hashlib.sha256(b"chunk").digest()
    assert parse_checksum("sha256 " + b64(digest).decode()) == ("sha256", digest)
    assert parse_checksum(None) is None
    for bad in ("md5 " + b64(b"x" * 16).decode(), "sha256 " + b64(b"short").decode(), "sha256 !!", "sha256 \xb2"):
        with pytest.raises(ValidationFailed):
            parse_checksum(bad)
    for bad in ("filename not-base64!", "filename \xb2", "filename " + b64(b"\xff").decode()):
        with pytest.raises(ValidationFailed):
            parse_metadata(bad)


def test_probe_refuses_what_is_not_a_recordable_video_and_reads_creation_time(videos, tmp_path):
    from valt_core.errors import UnplayableVideo
    from valt_core.media.importer import probe

    audio_only = _ffmpeg(tmp_path / "voice.m4a", "-f", "lavfi", "-i", "sine=frequency=440", "-t", "1",
                         "-c:a", "aac")
    mpeg4 = _ffmpeg(tmp_path / "old.mp4", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "1",
                    "-c:v", "mpeg4")
    for path, reason in ((videos["text"], "not a video"), (audio_only, "no video track"), (mpeg4, "mpeg4")):
        with pytest.raises(UnplayableVideo, match=reason):
            probe(str(path))
    found = probe(str(videos["small"]))
    assert (found.video_codec, found.audio_codec, found.width) == ("h264", "aac", 320)
    assert found.created_at is not None and found.created_at.isoformat() == "2026-12-01T10:00:03+00:00"
    assert abs(found.duration_s - 6.0) < 0.1


async def test_an_upload_outside_any_room_becomes_a_playable_recording_for_its_author(env_factory, videos):
    from valt_core import hookimpl

    env = await env_factory(segment_seconds=2.0)
    told: list[tuple] = []

    class Watcher:
        """A plugin that hears of finished recordings and written segments."""

        @hookimpl
        def valt_recording_stopped(self, recording_id, state):
            told.append(("stopped", recording_id, state))

        @hookimpl
        def valt_segment_written(self, recording_id, track_id, segment_id, key):
            told.append(("segment", recording_id))

    env.ctx.plugins.pm.register(Watcher())
    admin = await env.user("root", "admin")
    otto = await env.user("otto", "operator")
    room = await _room(env, admin)
    # Uploads into one room only: no upload outside any room.
    r = await env.client.post("/api/v1/users", json={"username": "lena", "password": "correct horse 1",
                                                     "role": None}, headers=env.bearer(admin))
    assert r.status_code == 201, await r.get_data(as_text=True)
    lena_id = (await r.get_json())["id"]
    r = await env.client.post("/api/v1/groups", headers=env.bearer(admin), json={
        "name": "Field team", "members": [lena_id],
        "rights": [{"right": right, "room_id": room} for right in ("rooms.view", "uploads.create")]})
    assert r.status_code == 201, await r.get_data(as_text=True)
    r = await env.client.post("/api/v1/auth/login", json={"username": "lena", "password": "correct horse 1"})
    lena = (await r.get_json())["token"]
    small = videos["small"].read_bytes()
    files = [{"filename": "phone.mp4", "size": len(small), "sha256": hashlib.sha256(small).hexdigest()}]
    r = await env.client.post("/api/v1/uploads", json={"files": files}, headers=env.bearer(lena))
    assert r.status_code == 403 and "every room" in (await r.get_json())["message"]
    r = await env.client.post("/api/v1/uploads", json={"room_id": room, "files": files}, headers=env.bearer(lena))
    assert r.status_code == 201

    r = await env.client.post("/api/v1/uploads", json={"name": "Home visit", "files": files}, headers=env.bearer(otto))
    assert r.status_code == 201
    up = await r.get_json()
    file_path = f"/api/v1/uploads/files/{up['files'][0]['id']}"
    r = await env.client.patch(file_path, data=small, headers=_tus(otto, 0, small, hashlib.sha256(small).digest()))
    assert r.status_code == 204, await r.get_data(as_text=True)
    await env.ctx.uploads.wait_idle()
    got = await (await env.client.get(f"/api/v1/uploads/{up['id']}", headers=env.bearer(otto))).get_json()
    assert got["state"] == "done", got
    r = await env.client.get(f"/api/v1/recordings/{got['recording_id']}", headers=env.bearer(otto))
    rec = await r.get_json()
    assert rec["room_id"] is None and rec["author_id"] is not None and rec["tracks"][0]["segments"] == 3
    r = await env.client.get(f"/api/v1/recordings/{rec['id']}/tracks/{rec['tracks'][0]['id']}/media",
                             headers=env.bearer(otto))
    assert r.status_code == 200
    with av.open(io.BytesIO(await r.get_data())) as f:
        assert sum(1 for _ in f.decode(video=0)) == 150
    # Plugins heard of it as of any recording: three segments, then the end.
    assert told == [("segment", rec["id"])] * 3 + [("stopped", rec["id"], "stopped")]
    # In the review list, with no room, for its author.
    r = await env.client.get("/api/v1/recordings", headers=env.bearer(otto))
    listed = [x for x in (await r.get_json())["items"] if x["id"] == rec["id"]]
    assert listed and listed[0]["room_id"] is None


async def test_a_recording_being_made_when_valt_stops_is_made_again_whole(env_factory, videos):
    env = await env_factory(segment_seconds=2.0)
    admin = await env.user("root", "admin")
    room = await _room(env, admin)
    small = videos["small"].read_bytes()
    r = await env.client.post("/api/v1/uploads", json={"room_id": room, "files": [
        {"filename": "phone.mp4", "size": len(small)}]}, headers=env.bearer(admin))
    up = await r.get_json()
    r = await env.client.patch(f"/api/v1/uploads/files/{up['files'][0]['id']}", data=small,
                               headers=_tus(admin, 0, small))
    assert r.status_code == 204
    # Valt stops while the stream copy runs: the upload stays "processing", its bytes kept.
    await env.ctx.uploads.stop()
    got = await (await env.client.get(f"/api/v1/uploads/{up['id']}", headers=env.bearer(admin))).get_json()
    assert got["state"] == "processing", got
    assert env.ctx.uploads.path_of(up["id"], up["files"][0]["id"]).exists()
    # The next start makes it again from the start: one recording, whole, its chain intact.
    await env.ctx.uploads.start()
    await env.ctx.uploads.wait_idle()
    got = await (await env.client.get(f"/api/v1/uploads/{up['id']}", headers=env.bearer(admin))).get_json()
    assert got["state"] == "done", got
    page = await (await env.client.get("/api/v1/recordings", headers=env.bearer(admin))).get_json()
    assert [x["id"] for x in page["items"]] == [got["recording_id"]]
    rec = await (await env.client.get(f"/api/v1/recordings/{got['recording_id']}",
                                      headers=env.bearer(admin))).get_json()
    assert rec["tracks"][0]["segments"] == 3 and abs(rec["tracks"][0]["duration_s"] - 6.0) < 0.1
    report = await env.ctx.media.verify(got["recording_id"])
    assert report.ok, report.problems
    keys = sorted(str(p.relative_to(env.ctx.settings.data_dir / "media"))
                  for p in (env.ctx.settings.data_dir / "media").rglob("*") if p.is_file())
    assert len(keys) == 3 and all(k.startswith(f"recordings/{rec['id']}/") for k in keys), keys


async def test_body_flow_holds_a_fast_body_back_until_the_view_takes_it():
    """BodyFlow: a client sending faster than the view consumes is held to the limit."""
    import re

    from valt_core.flow import SCOPE_KEY, BodyFlow, taken

    messages = [{"type": "http.request", "body": b"x" * 65536, "more_body": i < 99} for i in range(100)]
    pulled = []

    async def receive():
        pulled.append(len(pulled))
        return messages[len(pulled) - 1]

    seen = []

    async def app(scope, receive, send):
        flow = scope[SCOPE_KEY]

        async def body():
            while True:
                message = await receive()
                yield message["body"]
                if not message["more_body"]:
                    return

        reader = asyncio.ensure_future(_drain(body()))  # Quart's own receiver task, reading ahead
        async for chunk in taken(_slow(reader), scope):
            seen.append((len(pulled), flow.buffered, len(chunk)))
        await reader

    queue: asyncio.Queue = asyncio.Queue()

    async def _drain(body):
        async for chunk in body:
            await queue.put(chunk)
        await queue.put(None)

    async def _slow(reader):
        while (chunk := await queue.get()) is not None:
            await asyncio.sleep(0.001)  # the disk
            yield chunk

    await BodyFlow(app, re.compile("^/up$"), limit=4 * 65536)({"type": "http", "method": "PATCH", "path": "/up"},
                                                               receive, None)
    assert sum(size for *_, size in seen) == 100 * 65536
    # Never more than the limit (and the message being admitted) read ahead of the view.
    assert max(n - i - 1 for i, (n, _b, _s) in enumerate(seen)) <= 5, seen[:10]
