"""Recording into an S3 bucket (moto in server mode) through the whole app, with the store
frozen mid-recording: recording goes on into the spool, the health answer says so, and when the
store is back every segment is in the bucket, the track plays with no gap and verifies."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import boto3
import botocore.exceptions
import pytest

from valt_core.app import create_app

from .conftest import Env, make_settings
from .peers.s3 import ACCESS_KEY, SECRET_KEY, MotoS3
from .test_bad_input import SIM
from .test_recording import Studio, probe, wait_for

# The media side is what is tested; one database is enough.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoS3(tmp_path_factory.mktemp("moto-journey"))
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def app_on_s3(tmp_path, database_url, moto, monkeypatch, lock: bool = False, segment_seconds: float = 2,
                    **options):
    """The app recording to a new bucket of ``moto`` (with Object Lock if ``lock``); yields
    ``(env, s3 client, bucket)``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    bucket = f"valt-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                      aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    s3.create_bucket(Bucket=bucket, **({"ObjectLockEnabledForBucket": True} if lock else {}))
    settings = make_settings(tmp_path, database_url)
    settings.storage.driver = "s3"
    settings.storage.options = {"bucket": bucket, "endpoint_url": moto.url, "credentials": "environment",
                                "prefix": "site", "part_size_mb": 5, **options}
    settings.media.segment_seconds = segment_seconds
    app = create_app(settings)
    ctx = app.extensions["valt"]
    await ctx.db.upgrade()
    async with app.test_app() as test_app:
        yield Env(app=app, ctx=ctx, client=test_app.test_client()), s3, bucket


async def all_uploaded(env) -> bool:
    """True once the spool has nothing waiting for the bucket."""
    body = await (await env.client.get("/api/v1/health")).get_json()
    return body["storage"]["pending"]["objects"] == 0


async def test_a_store_outage_mid_recording_loses_nothing(tmp_path, database_url, moto, monkeypatch):
    async with app_on_s3(tmp_path, database_url, moto, monkeypatch, connect_timeout_s=1, read_timeout_s=2,
                         retries=0, retry_interval_s=0.2, retry_max_s=1) as (env, s3, bucket):
        settings = env.ctx.settings
        studio = Studio(env, await env.user("boss", "admin"))
        await studio.setup({"wide": SIM})
        rec = await studio.record("start", expect=201)
        await asyncio.sleep(3)
        away_at = time.monotonic()
        moto.pause()  # the store stops answering (its state kept)
        try:
            async def spooling():
                r = await env.client.get("/api/v1/health")
                body = await r.get_json()
                return body["storage"].get("status") == "spooling" and (r.status_code, body)

            code, health = await wait_for(spooling, 20, "the health answer to say the store is away")
            assert code == 200, health  # Valt still records: not a 503 that takes it out of a balancer
            assert health["status"] == "degraded" and health["storage"]["pending"]["objects"] >= 1, health
            assert "spool" in health["storage"]["message"]
            # The recording and its media server say so too.
            async def recording_says():
                body = await (await env.client.get(f"/api/v1/recordings/{rec['id']}", headers=studio.h)).get_json()
                return body["storage_status"] == "spooling" and body

            said = await wait_for(recording_says, 10, "the recording to say its store is away")
            assert said["state"] == "recording" and said["storage_message"], said
            servers = await (await env.client.get("/api/v1/media-servers", headers=studio.h)).get_json()
            assert servers[0]["storage_status"] == "spooling" and servers[0]["storage_pending"]["objects"] >= 1, servers
            # The store stays away for 20 s while recording goes on.
            await asyncio.sleep(max(0.0, 20 - (time.monotonic() - away_at)))
        finally:
            moto.resume()
        rec = await studio.record("stop")
        track = rec["tracks"][0]
        assert track["gaps"] == [] and track["end_s"] - track["start_s"] >= 22.0, track
        assert rec["storage_status"] == "ok", rec

        async def drained():
            body = await (await env.client.get("/api/v1/health")).get_json()
            return body["storage"]["status"] == "ok" and body["storage"]["pending"]["objects"] == 0 and body

        await wait_for(drained, 30, "the spool to drain")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="site/recordings/")
        keys = sorted(o["Key"] for o in listed.get("Contents", []))
        segments = (await (await env.client.get(
            f"/api/v1/recordings/{rec['id']}/tracks/{track['id']}/segments", headers=studio.h)).get_json())["segments"]
        assert len(keys) == len(segments) >= 7, (keys, segments)
        seen = probe(await (await studio.media(rec["id"], track["id"])).get_data())
        assert abs(seen["duration"] - (track["end_s"] - track["start_s"])) < 0.5, seen
        gaps = [b - a for a, b in zip(seen["times"], seen["times"][1:]) if b - a > 0.2]
        assert gaps == [], gaps  # the outage is no hole in the picture
        report = await env.ctx.media.verify(rec["id"])  # what `valt verify` runs
        assert report.ok and report.segments == len(segments), report
        assert (settings.data_dir / "s3-spool").is_dir()  # the spool's default place, below the data directory


async def test_a_legal_hold_keeps_a_recording_in_valt_and_in_an_object_lock_bucket(
        tmp_path, database_url, moto, monkeypatch):
    async with app_on_s3(tmp_path, database_url, moto, monkeypatch, lock=True) as (env, s3, bucket):
        studio = Studio(env, await env.user("boss", "admin"))
        operator = env.bearer(await env.user("olly", "operator"))
        await studio.setup({"wide": SIM})
        rec = await studio.record("start", expect=201)
        hold = f"/api/v1/recordings/{rec['id']}/legal-hold"
        assert (await env.client.put(hold, json={"held": True}, headers=operator)).status_code == 403
        await asyncio.sleep(2.5)  # a segment or so finished before the hold, more after it
        r = await env.client.put(hold, json={"held": True}, headers=studio.h)  # while it records
        assert r.status_code == 200 and (await r.get_json())["legal_hold"] is True
        await asyncio.sleep(5)
        rec = await studio.record("stop")

        await wait_for(lambda: all_uploaded(env), 20, "every segment in the bucket")
        segments = (await (await env.client.get(
            f"/api/v1/recordings/{rec['id']}/tracks/{rec['tracks'][0]['id']}/segments",
            headers=studio.h)).get_json())["segments"]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="site/")["Contents"]]
        assert len(keys) == len(segments) >= 3, (keys, segments)
        held = {k: s3.get_object_legal_hold(Bucket=bucket, Key=k)["LegalHold"].get("Status") for k in keys}
        assert set(held.values()) == {"ON"}, held  # those finished before the hold and after it
        r = await env.client.delete(f"/api/v1/recordings/{rec['id']}", headers=studio.h)
        assert r.status_code == 409 and "legal hold" in (await r.get_json())["message"]
        version = s3.list_object_versions(Bucket=bucket, Prefix=keys[0])["Versions"][0]
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            s3.delete_object(Bucket=bucket, Key=keys[0], VersionId=version["VersionId"])  # not even directly
        r = await env.client.put(hold, json={"held": False}, headers=studio.h)
        assert r.status_code == 200 and (await r.get_json())["legal_hold"] is False
        assert (await env.client.delete(f"/api/v1/recordings/{rec['id']}", headers=studio.h)).status_code == 204
        assert "Versions" not in s3.list_object_versions(Bucket=bucket, Prefix="site/")
        events = [e["action"] for e in (await (await env.client.get("/api/v1/audit", headers=studio.h))
                                        .get_json())["events"]]
        assert "recording.legal_hold" in events and "recording.legal_hold_lifted" in events


async def test_a_clip_download_can_go_straight_from_the_bucket_after_valts_checks(
        tmp_path, database_url, moto, monkeypatch):
    import httpx

    from .test_bad_input import whole_track_clip

    async with app_on_s3(tmp_path, database_url, moto, monkeypatch) as (env, s3, bucket):
        env.ctx.settings.storage.presigned_downloads_s = 60
        studio = Studio(env, await env.user("boss", "admin"))
        await studio.setup({"wide": SIM})
        await studio.record("start", expect=201)
        await asyncio.sleep(3)
        rec = await studio.record("stop")
        clip = await whole_track_clip(env, studio, rec)

        await wait_for(lambda: all_uploaded(env), 20, "the clip in the bucket")
        download = f"/api/v1/clips/{clip['id']}/download"
        outsider = env.bearer(await env.user("oscar", None))
        assert (await env.client.get(download, headers=outsider)).status_code in (403, 404)  # checked first
        r = await env.client.get(download, headers=studio.h)
        assert r.status_code == 302 and r.headers["Cache-Control"] == "private, no-store"
        url = r.headers["Location"]
        assert url.startswith(moto.url) and ("X-Amz-Signature=" in url or "Signature=" in url), url
        got = httpx.get(url)
        assert got.status_code == 200 and got.headers["content-type"] == "video/mp4"
        assert got.headers["content-disposition"].startswith('attachment; filename="clip-')
        seen = probe(got.content)
        assert seen["frames"] > 0 and seen["video"] == "h264"
        assert len(got.content) == clip["files"][0]["bytes"], clip["files"][0]
        events = [e["action"] for e in (await (await env.client.get("/api/v1/audit", headers=studio.h))
                                        .get_json())["events"]]
        assert "clip.download" in events  # audited by Valt, though the store sent the bytes
