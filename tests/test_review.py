"""Issue 11, finding and looking after recordings: search, filters, pages, rename, delete,
thumbnails and the segment lists the player streams (on SQLite and on MariaDB).

The search tests write recordings straight into the database (what is tested is the SQL over
many rows); thumbnails, segments and deleting use a real recording of a sim camera.
"""

from __future__ import annotations

import asyncio
import io
from datetime import datetime, timedelta, timezone

import av
import pytest
from sqlmodel import select

from valt_core.db.models import AuditEvent, Marker, Recording, Room, Segment, Track
from valt_core.users import create_user

from .test_bad_input import SIM, recorded

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


async def seed(env) -> dict:
    """Two rooms, two authors, seven recordings a day apart (the newest last), one marker."""
    ctx = env.ctx
    alice = await create_user(ctx, "alice", "correct horse 1", role="operator", display_name="Alice Smith")
    bob = await create_user(ctx, "bob", "correct horse 1", role="operator")
    async with ctx.db.session() as s:
        rooms = [Room(name="Interview 1"), Room(name="Counseling A")]
        s.add_all(rooms)
        await s.commit()
        for r in rooms:
            await s.refresh(r)
        specs = [  # name, room, author, state, notes
            ("Smith intake", 0, alice, "stopped", ""),
            ("Follow-up", 0, bob, "stopped", "parent present"),
            ("Session 3", 1, alice, "interrupted", ""),
            ("100% review", 1, bob, "stopped", ""),
            ("Morning", 0, alice, "failed", ""),
            ("Evening", 1, bob, "stopped", "noisy room"),
            ("Last one", 0, bob, "stopped", ""),
        ]
        recs = []
        for i, (name, room, author, state, notes) in enumerate(specs):
            rec = Recording(name=name, room_id=rooms[room].id, author_id=author.id, state=state, notes=notes,
                            started_at=T0 + timedelta(days=i), stopped_at=T0 + timedelta(days=i, minutes=30))
            s.add(rec)
            recs.append(rec)
        await s.commit()
        for rec in recs:
            await s.refresh(rec)
        s.add(Marker(recording_id=recs[1].id, author_id=alice.id, time_s=12.0, event="Door opened by staff"))
        await s.commit()
    return {"rooms": [r.id for r in rooms], "alice": alice.id, "bob": bob.id, "recs": [r.id for r in recs]}


async def names(env, h, query: str = "") -> tuple[list[str], int]:
    r = await env.client.get(f"/api/v1/recordings{query}", headers=h)
    assert r.status_code == 200, await r.get_data(as_text=True)
    page = await r.get_json()
    return [item["name"] for item in page["items"]], page["total"]


async def test_search_filters_pages_and_totals(env):
    ids = await seed(env)
    h = env.bearer(await env.user("viewer", "viewer"))
    everything, total = await names(env, h)
    assert total == 7
    assert everything == ["Last one", "Evening", "Morning", "100% review", "Session 3", "Follow-up", "Smith intake"]
    # Pages: the total stays, the window moves.
    assert await names(env, h, "?limit=3") == (everything[:3], 7)
    assert await names(env, h, "?limit=3&offset=3") == (everything[3:6], 7)
    assert await names(env, h, "?limit=3&offset=6") == (everything[6:], 7)
    # Past the end, and a page that ends exactly at the end: the total is still counted.
    assert await names(env, h, "?limit=3&offset=9") == ([], 7)
    assert await names(env, h, "?limit=7") == (everything, 7)
    assert await names(env, h, "?q=smith&limit=2") == (["Morning", "Session 3"], 3)
    # Free text, any case, over name, notes, room, author and marker text; every word must match.
    assert await names(env, h, "?q=smith") == (["Morning", "Session 3", "Smith intake"], 3)  # name or author
    assert await names(env, h, "?q=PARENT") == (["Follow-up"], 1)
    assert await names(env, h, "?q=counseling") == (["Evening", "100% review", "Session 3"], 3)
    assert await names(env, h, "?q=door") == (["Follow-up"], 1)
    assert await names(env, h, "?q=door+staff") == (["Follow-up"], 1)
    assert await names(env, h, "?q=door+evening") == ([], 0)
    # What a person types is literal: % and _ are not wildcards.
    assert await names(env, h, "?q=100%25") == (["100% review"], 1)
    assert await names(env, h, "?q=_") == ([], 0)
    # Filters, alone and together.
    assert (await names(env, h, f"?room_id={ids['rooms'][1]}"))[1] == 3
    assert (await names(env, h, f"?author_id={ids['alice']}"))[0] == ["Morning", "Session 3", "Smith intake"]
    assert await names(env, h, "?state=interrupted") == (["Session 3"], 1)
    assert await names(env, h, f"?state=stopped&room_id={ids['rooms'][0]}&author_id={ids['bob']}") == (
        ["Last one", "Follow-up"], 2)
    day = (T0 + timedelta(days=2)).isoformat()
    until = (T0 + timedelta(days=4)).isoformat()
    assert await names(env, h, f"?from={day}&to={until}".replace("+", "%2B")) == (["100% review", "Session 3"], 2)


async def test_a_list_item_says_what_the_review_page_shows(env):
    ids = await seed(env)
    h = env.bearer(await env.user("viewer", "viewer"))
    page = await (await env.client.get("/api/v1/recordings?q=follow", headers=h)).get_json()
    [item] = page["items"]
    assert item["id"] == ids["recs"][1]
    assert (item["room"], item["author"], item["author_id"]) == ("Interview 1", "bob", ids["bob"])
    assert item["state"] == "stopped"
    assert (item["markers"], item["gaps"], item["cameras"], item["duration_s"]) == (1, 0, [], 0.0)
    assert item["started_at"] == (T0 + timedelta(days=1)).isoformat()
    assert item["thumbnail_url"] == f"/api/v1/recordings/{item['id']}/thumbnail"
    assert (page["limit"], page["offset"]) == (50, 0)


@pytest.mark.parametrize("query, field", [
    ("?state=deleted", "state"), ("?limit=0", "limit"), ("?limit=201", "limit"), ("?offset=-1", "offset"),
    ("?from=yesterday", "from"), ("?to=1700000000", "to"), ("?q=" + "x" * 201, "q"), ("?author_id=0", "author_id"),
])
async def test_bad_search_parameters_are_400_naming_the_parameter(env, query, field):
    h = env.bearer(await env.user("viewer", "viewer"))
    r = await env.client.get(f"/api/v1/recordings{query}", headers=h)
    assert r.status_code == 400
    problem = await r.get_json()
    assert field in str(problem), problem


async def test_rename_and_notes_by_an_operator_audited_refused_to_a_viewer(env):
    ids = await seed(env)
    rec_id = ids["recs"][0]
    op = env.bearer(await env.user("op", "operator"))
    viewer = env.bearer(await env.user("viewer", "viewer"))
    r = await env.client.patch(f"/api/v1/recordings/{rec_id}", headers=viewer, json={"name": "x"})
    assert r.status_code == 403
    r = await env.client.patch(f"/api/v1/recordings/{rec_id}", headers=op,
                               json={"name": "Smith intake (case 1187)", "notes": "child and parent; see file"})
    assert r.status_code == 200
    got = await r.get_json()
    assert (got["name"], got["notes"]) == ("Smith intake (case 1187)", "child and parent; see file")
    assert await names(env, viewer, "?q=1187") == (["Smith intake (case 1187)"], 1)
    r = await env.client.patch(f"/api/v1/recordings/{rec_id}", headers=op, json={"name": "y" * 201})
    assert r.status_code == 400 and "name" in str(await r.get_json())
    r = await env.client.patch(f"/api/v1/recordings/{rec_id}", headers=op, json={"title": "y"})
    assert r.status_code == 400
    r = await env.client.patch("/api/v1/recordings/999999", headers=op, json={"name": "y"})
    assert r.status_code == 404
    async with env.ctx.db.session() as s:
        [event] = (await s.exec(select(AuditEvent).where(AuditEvent.action == "recording.change"))).all()
    assert event.target_id == str(rec_id)
    assert event.detail == {"fields": ["name", "notes"], "name_before": "Smith intake",
                            "name": "Smith intake (case 1187)"}
    assert "child" not in str(event.detail)  # notes are not copied into the log


async def test_thumbnail_segments_playback_audit_and_delete_of_a_real_recording(env_factory):
    env = await env_factory(segment_seconds=1.0)
    studio, rec = await recorded(env, 3.5, {"wide": SIM, "close": SIM})
    rec_id, tracks = rec["id"], rec["tracks"]
    viewer = env.bearer(await env.user("viewer", "viewer"))

    # The thumbnail: a JPEG of the first track, at most 480 wide, the same bytes the second time.
    r = await env.client.get(f"/api/v1/recordings/{rec_id}/thumbnail", headers=viewer)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    jpeg = await r.get_data()
    with av.open(io.BytesIO(jpeg)) as f:
        frame = next(f.decode(video=0))
    assert (frame.width, frame.height) == (320, 240)  # already smaller than 480: kept
    assert await (await env.client.get(f"/api/v1/recordings/{rec_id}/thumbnail", headers=viewer)).get_data() == jpeg

    # The segment list places each segment on the recording clock; the segments play end to end.
    r = await env.client.get(f"/api/v1/recordings/{rec_id}/tracks/{tracks[0]['id']}/segments", headers=viewer)
    assert r.status_code == 200
    listing = await r.get_json()
    assert listing["mime_type"].startswith('video/mp4; codecs="avc1.')
    segs = listing["segments"]
    assert len(segs) >= 2
    assert segs[0]["start_s"] == pytest.approx(tracks[0]["start_s"], abs=0.01)
    for a, b in zip(segs, segs[1:]):
        assert b["start_s"] == pytest.approx(a["start_s"] + a["duration_s"], abs=0.1)
    played = 0.0
    for seg in segs:
        r = await env.client.get(seg["url"], headers=viewer)
        assert r.status_code == 200 and r.headers["Content-Type"] == "video/mp4"
        data = await r.get_data()
        assert len(data) == seg["bytes"]
        with av.open(io.BytesIO(data)) as f:
            frames = [fr.time for fr in f.decode(video=0)]
        assert frames and len(frames) == pytest.approx(25 * seg["duration_s"], abs=3)
        played += seg["duration_s"]
    assert played == pytest.approx(tracks[0]["duration_s"], abs=0.05)
    r = await env.client.get(f"/api/v1/recordings/{rec_id}/tracks/{tracks[1]['id']}/segments/{segs[0]['seq']}",
                             headers=viewer)
    assert r.status_code == 200  # the other track's segment of the same number
    r = await env.client.get(f"/api/v1/recordings/{rec_id}/tracks/{tracks[0]['id']}/segments/99999", headers=viewer)
    assert r.status_code == 404
    r = await env.client.get(f"/api/v1/recordings/{rec_id + 1}/tracks/{tracks[0]['id']}/segments", headers=viewer)
    assert r.status_code == 404

    # Watching is audited as one span per continuous viewing, not one event per segment.
    await env.ctx.review.close()
    async with env.ctx.db.session() as s:
        spans = (await s.exec(select(AuditEvent).where(AuditEvent.action == "recording.watch"))).all()
    assert len(spans) == 1
    assert spans[0].detail["tracks"] == sorted({tracks[0]["id"], tracks[1]["id"]})
    assert spans[0].detail["start_s"] == pytest.approx(segs[0]["start_s"], abs=0.01)
    assert spans[0].detail["end_s"] == pytest.approx(segs[-1]["start_s"] + segs[-1]["duration_s"], abs=0.01)

    # Deleting: admins only, refused under legal hold, then everything is gone.
    op = env.bearer(await env.user("op", "operator"))
    assert (await env.client.delete(f"/api/v1/recordings/{rec_id}", headers=op)).status_code == 403
    hold = f"/api/v1/recordings/{rec_id}/legal-hold"
    assert (await env.client.put(hold, json={"held": True}, headers=op)).status_code == 403  # recordings.hold
    r = await env.client.put(hold, json={"held": True}, headers=studio.h)
    assert r.status_code == 200 and (await r.get_json())["legal_hold"] is True
    r = await env.client.delete(f"/api/v1/recordings/{rec_id}", headers=studio.h)
    assert r.status_code == 409 and "legal hold" in (await r.get_json())["message"]
    r = await env.client.put(hold, json={"held": False}, headers=studio.h)
    assert r.status_code == 200 and (await r.get_json())["legal_hold"] is False
    async with env.ctx.db.session() as s:
        keys = list((await s.exec(select(Segment.key).join(Track).where(Track.recording_id == rec_id))).all())
    media = env.ctx.settings.data_dir / "media"
    assert keys and all((media / k).exists() for k in keys)
    r = await env.client.delete(f"/api/v1/recordings/{rec_id}", headers=studio.h)
    assert r.status_code == 204
    assert not any((media / k).exists() for k in keys)
    assert not list((env.ctx.settings.data_dir / "cache" / "thumbnails").glob(f"recording-{rec_id}-*"))
    assert (await env.client.get(f"/api/v1/recordings/{rec_id}", headers=viewer)).status_code == 404
    assert (await env.client.delete(f"/api/v1/recordings/{rec_id}", headers=studio.h)).status_code == 404
    async with env.ctx.db.session() as s:
        assert (await s.exec(select(Track).where(Track.recording_id == rec_id))).all() == []
        [event] = (await s.exec(select(AuditEvent).where(AuditEvent.action == "recording.delete"))).all()
    assert event.detail["segments"] == len(keys) and event.detail["bytes"] > 0


async def test_a_running_recording_cannot_be_deleted_and_has_no_thumbnail_before_its_first_segment(env_factory):
    env = await env_factory(segment_seconds=30.0)
    studio, _ = await recorded(env, 0.1)
    running = await studio.record("start", expect=201)
    r = await env.client.get(f"/api/v1/recordings/{running['id']}/thumbnail", headers=studio.h)
    assert r.status_code == 404 and "no finished video" in (await r.get_json())["message"]
    r = await env.client.delete(f"/api/v1/recordings/{running['id']}", headers=studio.h)
    assert r.status_code == 409 and "stop it" in (await r.get_json())["message"]
    await asyncio.sleep(0.5)
    await studio.record("stop")


async def test_a_recordings_clips_are_listed_and_a_zip_carries_the_markers_in_its_range(env_factory):
    import json
    import zipfile

    from .test_bad_input import whole_track_clip

    env = await env_factory(segment_seconds=2.0)
    studio, rec = await recorded(env, 3.0)
    track = rec["tracks"][0]
    async with env.ctx.db.session() as s:
        for at, text in ((track["start_s"] + 0.5, "inside"), (track["end_s"] + 50.0, "after the clip")):
            s.add(Marker(recording_id=rec["id"], author_id=None, time_s=at, event=text))
        await s.commit()
    clip = await whole_track_clip(env, studio, rec)
    listed = await (await env.client.get(f"/api/v1/recordings/{rec['id']}/clips", headers=studio.h)).get_json()
    assert [c["id"] for c in listed] == [clip["id"]]
    assert listed[0]["author"] == "boss" and listed[0]["files"][0]["sha256"] == clip["files"][0]["sha256"]
    # One file: the MP4 itself, unless a zip is asked for; the zip has markers.json beside it.
    r = await env.client.get(f"/api/v1/clips/{clip['id']}/download", headers=studio.h)
    assert r.headers["Content-Type"] == "video/mp4"
    r = await env.client.get(f"/api/v1/clips/{clip['id']}/download?format=zip", headers=studio.h)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(await r.get_data())) as z:
        assert sorted(z.namelist()) == sorted([clip["files"][0]["name"], "markers.json"])
        markers = json.loads(z.read("markers.json"))
    assert [m["event"] for m in markers["markers"]] == ["inside"]
    assert markers["markers"][0]["clip_time_s"] == pytest.approx(track["start_s"] + 0.5 - clip["start_s"], abs=0.01)
    r = await env.client.get(f"/api/v1/recordings/{rec['id'] + 99}/clips", headers=studio.h)
    assert r.status_code == 404
