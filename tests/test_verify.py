"""``valt verify`` on recordings that hold nothing: an empty recording is a finding, not "intact"."""

from __future__ import annotations

from valt_core.db.models import Recording, Room, Track

from .test_cli import run


async def test_verify_reports_a_recording_with_no_segments(env, tmp_path, database_url):
    async with env.ctx.db.session() as s:
        room = Room(name="R")
        s.add(room)
        await s.flush()
        empty = Recording(room_id=room.id, name="no segments", state="stopped")
        bare = Recording(room_id=room.id, name="no tracks", state="stopped")
        s.add(empty)
        s.add(bare)
        await s.flush()
        s.add(Track(recording_id=empty.id, camera_name="wide", storage_prefix=f"recordings/{empty.id}/"))
        await s.commit()
    report = await env.ctx.media.verify(empty.id)
    assert not report.ok and report.segments == 0
    assert any("wide" in p and "no segments" in p for p in report.problems), report.problems
    report = await env.ctx.media.verify(bare.id)
    assert not report.ok and "no tracks" in report.problems[0]
    # And the command says so, with a failing exit code, as an operator sees it.
    done = run(tmp_path, "verify", str(empty.id), VALT_DATABASE_URL=database_url)
    assert done.returncode != 0 and "NOT intact" in done.stdout, done.stdout
    assert "no segments" in done.stdout + done.stderr
