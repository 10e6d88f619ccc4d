"""The review player reading segments straight from an S3 bucket by presigned URLs.

A real ``valt demo`` records to a bucket of moto (in server mode) with ``[storage]
presigned_playback_s`` set. Chromium opens the player: each segment request is checked and
audited by Valt, answered with a 302 to a signed URL, and the bytes come from the bucket (its
CORS rule lets Valt's pages read them, and the pages' CSP lets them connect there). The videos
play with no CSP violation.
"""

from __future__ import annotations

import http.client as httpclient
import json
import time
import uuid
from urllib.parse import urlsplit

import boto3

from .peers.s3 import ACCESS_KEY, SECRET_KEY
from .test_browser import ARTIFACTS, browser, sign_in, wait_until  # noqa: F401 - fixture
from .test_browser_csp import RECORD_VIOLATIONS
from .test_cli import Server, http, run

PASSWORD = "presigned player pw"
SMALL = {"width": 320, "height": 240, "keyframe_interval": 25}


def raw_get(url: str, token: str) -> tuple[int, dict[str, str]]:
    """One GET, redirects not followed: its status and headers."""
    parts = urlsplit(url)
    conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                     headers={"Authorization": f"Bearer {token}"})
        answer = conn.getresponse()
        answer.read()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}
    finally:
        conn.close()


async def test_the_player_reads_segments_from_the_bucket_by_presigned_urls(tmp_path, browser, s3_endpoint):  # noqa: F811
    bucket = f"valt-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint.url, region_name="us-east-1",
                      aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    s3.create_bucket(Bucket=bucket)
    options = {"bucket": bucket, "endpoint_url": s3_endpoint.url, "credentials": "environment",
               "addressing_style": "path", "part_size_mb": 5}
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD=PASSWORD, VALT_MEDIA__ALWAYS_ON="false",
                    VALT_MEDIA__SEGMENT_SECONDS="2", VALT_STORAGE__DRIVER="s3",
                    VALT_STORAGE__OPTIONS=json.dumps(options), VALT_STORAGE__PRESIGNED_PLAYBACK_S="60",
                    AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    try:
        # The site's one step at the bucket: let Valt's pages read it.
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
            {"AllowedOrigins": [server.base], "AllowedMethods": ["GET"], "AllowedHeaders": ["*"]}]})
        base = server.base + "/api/v1"
        token = http("POST", base + "/auth/login", {"username": "admin", "password": PASSWORD})[1]["token"]
        room = http("POST", base + "/rooms", {"name": "Sim lab 2"}, token)[1]
        for name in ("bed", "monitor"):
            assert http("POST", base + "/cameras", {"name": name, "driver": "sim", "room_id": room["id"],
                                                    "config": SMALL}, token)[0] == 201
        status, rec = http("POST", base + f"/rooms/{room['id']}/record/start", None, token)
        assert status == 201, rec
        time.sleep(7)
        status, rec = http("POST", base + f"/rooms/{room['id']}/record/stop", None, token)
        assert status == 200, rec
        deadline = time.monotonic() + 30
        while http("GET", base + "/health")[1]["storage"]["pending"]["objects"]:
            assert time.monotonic() < deadline, "the spool did not drain"
            time.sleep(0.2)

        # A segment: Valt checks, then sends the reader to the bucket; a stranger gets no URL.
        track = rec["tracks"][0]
        segment = f"{base}/recordings/{rec['id']}/tracks/{track['id']}/segments/1"
        status, headers = raw_get(segment, token)
        assert status == 302 and headers["location"].startswith(s3_endpoint.url + f"/{bucket}/"), headers
        assert "X-Amz-Signature=" in headers["location"] and "X-Amz-Expires=60" in headers["location"]
        assert raw_get(segment, "not-a-token")[0] == 401

        page = await browser.new_page()
        await page.add_init_script(RECORD_VIOLATIONS)
        from_bucket: list[int] = []
        page.on("response", lambda r: from_bucket.append(r.status) if r.url.startswith(s3_endpoint.url) else None)
        await sign_in(page, server.base, PASSWORD)
        await page.goto(server.base + f"/review/recordings/{rec['id']}")
        await wait_until(page, "document.querySelectorAll('.view video').length === 2", timeout=10000)
        await page.click("button.play")
        await wait_until(page, "window.valtPlayer.videoTimes().every(v => v.time > 2)", timeout=20000)
        await page.screenshot(path=str(ARTIFACTS / "review-player-presigned.png"))
        assert await page.evaluate("window.__cspViolations") == []
        assert len(from_bucket) >= 2 and set(from_bucket) == {200}, from_bucket  # both tracks, from the bucket
        await page.close()
        # Watching through signed URLs is audited like any other: the span is written when it
        # ends (here: when the server stops).
        assert server.stop() == 0
        listed = run(tmp_path, "audit", "list", "--action", "recording.watch", "--json")
        assert listed.returncode == 0, listed.stderr
        spans = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
        assert any(str(e["target_id"]) == str(rec["id"]) and len(e["detail"]["tracks"]) == 2 for e in spans), spans
    finally:
        server.stop()
