"""Recording onto an SMB share (a private Samba server) through the whole app, with the server
stopped part-way: recording goes on into the spool, the health answer says so, and once the
server is back every segment is on the share and the track plays with no hole."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

import pytest

from valt_core.app import create_app

from .conftest import Env, make_settings
from .peers.samba import PrivateSamba
from .test_bad_input import SIM
from .test_recording import Studio, probe, wait_for

# The media side is what is tested; one database is enough.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def samba(tmp_path_factory):
    try:
        server = PrivateSamba(tmp_path_factory.mktemp("samba-journey"))
    except (RuntimeError, OSError, subprocess.CalledProcessError) as err:
        pytest.fail(f"the Samba peer cannot start: {err}")
    yield server
    server.stop()


async def test_a_share_outage_mid_recording_loses_nothing(tmp_path, database_url, samba):
    folder = f"site-{uuid.uuid4().hex[:8]}"
    settings = make_settings(tmp_path, database_url)
    settings.storage.driver = "nas"
    settings.storage.options = {"server": "127.0.0.1", "port": samba.port, "share": "valt", "path": folder,
                                "user": samba.user, "password": samba.password, "timeout_s": 2,
                                "retry_interval_s": 0.2, "retry_max_s": 1}
    settings.media.segment_seconds = 2
    app = create_app(settings)
    ctx = app.extensions["valt"]
    await ctx.db.upgrade()
    async with app.test_app() as test_app:
        env = Env(app=app, ctx=ctx, client=test_app.test_client())
        studio = Studio(env, await env.user("boss", "admin"))
        await studio.setup({"wide": SIM})
        rec = await studio.record("start", expect=201)
        await asyncio.sleep(3)
        away_at = time.monotonic()
        samba.stop()  # the NAS goes away (its files kept)
        try:
            async def spooling():
                r = await env.client.get("/api/v1/health")
                body = await r.get_json()
                return body["storage"].get("status") == "spooling" and (r.status_code, body)

            code, health = await wait_for(spooling, 20, "the health answer to say the share is away")
            assert code == 200, health  # Valt still records
            assert health["status"] == "degraded" and health["storage"]["pending"]["objects"] >= 1, health
            assert "cannot reach" in health["storage"]["message"] or "did not answer" in health["storage"]["message"]
            # The recording and its media server say so too.
            async def recording_says():
                body = await (await env.client.get(f"/api/v1/recordings/{rec['id']}", headers=studio.h)).get_json()
                return body["storage_status"] == "spooling" and body

            said = await wait_for(recording_says, 10, "the recording to say its share is away")
            assert said["state"] == "recording" and said["storage_message"], said
            servers = await (await env.client.get("/api/v1/media-servers", headers=studio.h)).get_json()
            assert servers[0]["storage_status"] == "spooling" and servers[0]["storage_pending"]["objects"] >= 1, servers
            # The share stays away for 20 s while recording goes on.
            await asyncio.sleep(max(0.0, 20 - (time.monotonic() - away_at)))
        finally:
            samba.start()
        rec = await studio.record("stop")
        track = rec["tracks"][0]
        assert track["gaps"] == [] and track["end_s"] - track["start_s"] >= 22.0, track
        assert rec["storage_status"] == "ok", rec

        async def drained():
            body = await (await env.client.get("/api/v1/health")).get_json()
            return body["storage"]["status"] == "ok" and body["storage"]["pending"]["objects"] == 0 and body

        await wait_for(drained, 30, "the spool to drain")
        on_share = sorted(p for p in (samba.shares["valt"] / folder / "recordings").rglob("*") if p.is_file())
        segments = (await (await env.client.get(
            f"/api/v1/recordings/{rec['id']}/tracks/{track['id']}/segments", headers=studio.h)).get_json())["segments"]
        assert len(on_share) == len(segments) >= 7, (on_share, segments)
        assert not [p for p in on_share if p.name.endswith(".partial")]
        seen = probe(await (await studio.media(rec["id"], track["id"])).get_data())
        assert abs(seen["duration"] - (track["end_s"] - track["start_s"])) < 0.5, seen
        gaps = [b - a for a, b in zip(seen["times"], seen["times"][1:]) if b - a > 0.2]
        assert gaps == [], gaps  # the outage is no hole in the picture
        report = await env.ctx.media.verify(rec["id"])  # what `valt verify` runs
        assert report.ok and report.segments == len(segments), report
        assert (settings.data_dir / "nas-spool").is_dir()  # the spool's default place, below the data directory
    await ctx.close()
