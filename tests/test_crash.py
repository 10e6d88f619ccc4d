"""A server killed with SIGKILL mid-recording: the next start keeps what was written."""

from __future__ import annotations

import asyncio
import io
import signal
import time
import urllib.request

import av
import pytest

from valt_core.plugins import PluginHost

from .conftest import STORES
from .test_cli import Server, http, record_one_sim_camera, run


def unfinished_writes(tmp_path, storage) -> list[str]:
    """The keys the store says were left mid-write (asked as the next start asks it)."""
    async def ask() -> list[str]:
        backend = PluginHost.load([]).build_storage_backend(storage.driver, storage.options, tmp_path / "data")
        try:
            return await backend.unfinished("recordings")
        finally:
            await backend.aclose()

    return asyncio.run(ask())


@pytest.mark.parametrize("storage", STORES, indirect=True)
def test_sigkilled_recording_is_recovered_playable_and_indexed(tmp_path, database_url, storage):
    db = {"VALT_DATABASE_URL": database_url, "VALT_MEDIA__SEGMENT_SECONDS": "3", **storage.env()}
    assert run(tmp_path, "db", "upgrade", **db).returncode == 0
    added = run(tmp_path, "user", "add", "boss", "--admin", "--password-stdin", input="boss password\n", **db)
    assert added.returncode == 0
    server = Server(tmp_path, "serve", **db)
    token, room, rec = record_one_sim_camera(server)
    time.sleep(7.5)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    assert unfinished_writes(tmp_path, storage), "a segment should have been mid-write"

    server = Server(tmp_path, "serve", **db)
    try:
        login = {"username": "boss", "password": "boss password"}
        token = http("POST", server.base + "/api/v1/auth/login", login)[1]["token"]
        got = http("GET", server.base + f"/api/v1/recordings/{rec['id']}", token=token)[1]
        assert got["state"] == "interrupted" and "interrupted" in got["notes"]
        track = got["tracks"][0]
        # Killed at about 7.5 s: at most the fragment being written (1 s) is lost.
        assert track["end_s"] >= 5.5, track
        assert track["segments"] >= 2
        req = urllib.request.Request(
            server.base + f"/api/v1/recordings/{rec['id']}/tracks/{track['id']}/media",
            headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            data = r.read()
        with av.open(io.BytesIO(data)) as f:
            frames = sum(1 for _ in f.decode(video=0))
        assert frames >= 25 * (track["end_s"] - track["start_s"]) - 3
    finally:
        server.stop()
    # Every object left is one the index knows, and the chain verifies.
    assert unfinished_writes(tmp_path, storage) == []
    verify = run(tmp_path, "verify", str(rec["id"]), **db)
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
