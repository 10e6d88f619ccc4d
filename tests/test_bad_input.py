"""Issue 9, "bad input" and "protocol details": each finding answered 500 (or wrongly) before.

Every test is named after its finding. The app runs on SQLite and on MariaDB (``env``);
recordings come from the ``sim`` camera, driven through the API as an operator would.
"""

from __future__ import annotations

import asyncio
import io
import re
import tracemalloc
import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from .test_recording import Studio, wait_for

REPO = Path(__file__).resolve().parent.parent
SIM = {"driver": "sim", "config": {"width": 320, "height": 240, "keyframe_interval": 25}}
BIG = 2**63


async def recorded(env, seconds: float = 3.0, cameras: dict | None = None):
    """An admin's studio and a stopped recording of ``cameras`` (one sim camera by default)."""
    studio = Studio(env, await env.user("boss", "admin"))
    await studio.setup(cameras or {"wide": SIM})
    await studio.record("start", expect=201)
    await asyncio.sleep(seconds)
    return studio, await studio.record("stop")


async def whole_track_clip(env, studio, rec) -> dict:
    """A clip of the first track's whole length over every track, once it is done."""
    t = rec["tracks"][0]
    r = await env.client.post(f"/api/v1/recordings/{rec['id']}/clips", headers=studio.h,
                              json={"start_s": t["start_s"], "end_s": t["end_s"]})
    clip_id = (await r.get_json())["id"]

    async def done():
        c = await (await env.client.get(f"/api/v1/clips/{clip_id}", headers=studio.h)).get_json()
        return c["state"] == "done" and c

    return await wait_for(done, 30, "the clip")


def json_routes(app):
    """``(method, path)`` of every API route that reads a JSON body, ids filled with 1."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.rule.startswith("/api/v1/") and getattr(view, "valt_body", None) is not None:
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                yield method, re.sub(r"<[^>]+>", "1", rule.rule)


# --- Bad input: ranges ----------------------------------------------------------------------

async def test_suffix_range_on_track_media(env_factory):
    env = await env_factory(segment_seconds=2)
    studio, rec = await recorded(env)
    track = rec["tracks"][0]
    whole = await (await studio.media(rec["id"], track["id"])).get_data()
    r = await studio.media(rec["id"], track["id"], headers={"Range": "bytes=-100"})
    assert r.status_code == 206
    assert await r.get_data() == whole[-100:]
    assert r.headers["Content-Range"] == f"bytes {len(whole) - 100}-{len(whole) - 1}/{len(whole)}"
    # A suffix longer than the file is the whole file (RFC 9110, 14.1.2).
    r = await studio.media(rec["id"], track["id"], headers={"Range": f"bytes=-{len(whole) * 2}"})
    assert r.status_code == 206 and await r.get_data() == whole


async def test_multi_range_and_malformed_ranges_answer_the_whole_file(env_factory):
    env = await env_factory(segment_seconds=2)
    studio, rec = await recorded(env)
    track = rec["tracks"][0]
    whole = await (await studio.media(rec["id"], track["id"])).get_data()
    for header in ["bytes=0-10,20-30", "bytes=abc", "bytes=5-2", "bytes=-", "items=0-10", "bytes=1-2-3",
                   "bytes=0-10, -5"]:
        r = await studio.media(rec["id"], track["id"], headers={"Range": header})
        assert r.status_code == 200, (header, r.status_code)
        assert await r.get_data() == whole, header
    # Only a well-formed range wholly past the end is unsatisfiable.
    for header in [f"bytes={len(whole)}-", f"bytes={len(whole) + 5}-{len(whole) + 9}", "bytes=-0"]:
        r = await studio.media(rec["id"], track["id"], headers={"Range": header})
        assert r.status_code == 416, header
        assert r.headers["Content-Range"] == f"bytes */{len(whole)}"


# --- Bad input: ids -------------------------------------------------------------------------

async def test_ids_of_2_63_and_more_in_a_path_are_not_found(env):
    h = env.bearer(await env.user("boss", "admin"))
    for path in [f"/api/v1/rooms/{BIG}", f"/api/v1/rooms/{2**64}", f"/api/v1/cameras/{BIG}",
                 f"/api/v1/recordings/{BIG}", f"/api/v1/clips/{BIG * 10}", f"/api/v1/recordings/1/tracks/{BIG}/media",
                 "/api/v1/rooms/0"]:
        r = await env.client.get(path, headers=h)
        assert r.status_code == 404, (path, r.status_code)
        assert (await r.get_json())["error"] == "not_found"
    # Not 405 either, whatever the method: the path names nothing.
    for method, path in [("DELETE", "/api/v1/cameras/0"), ("PATCH", f"/api/v1/cameras/{BIG}"),
                         ("POST", "/api/v1/cameras/007/presets")]:
        r = await env.client.open(path, method=method, headers=h, json={"name": "x"})
        assert r.status_code == 404, (method, path, r.status_code)
    # The largest id is still an id: looked up, and not there.
    r = await env.client.get(f"/api/v1/rooms/{BIG - 1}", headers=h)
    assert r.status_code == 404 and "no room" in (await r.get_json())["message"]


async def test_room_id_query_of_2_63_or_text_is_refused(env):
    h = env.bearer(await env.user("vic", "viewer"))
    for value in [str(BIG), "abc", "1.5", "-1", "0", ""]:
        r = await env.client.get(f"/api/v1/recordings?room_id={value}", headers=h)
        assert r.status_code == 400, (value, r.status_code)
        body = await r.get_json()
        assert body["error"] == "invalid_request" and "room_id" in body["details"]["fields"]
    r = await env.client.get("/api/v1/recordings?room_id=1&room_id=2", headers=h)
    assert r.status_code == 400
    assert (await env.client.get("/api/v1/recordings?room_id=1", headers=h)).status_code == 200


async def test_a_time_in_a_query_is_iso_8601_not_a_number(env):
    h = env.bearer(await env.user("boss", "admin"))
    r = await env.client.get("/api/v1/audit?until=0.5", headers=h)
    assert r.status_code == 400 and "ISO 8601" in await r.get_data(as_text=True)
    r = await env.client.get("/api/v1/audit?until=2026-12-02T10:00:00%2B00:00", headers=h)
    assert r.status_code == 200


async def test_integers_beyond_64_bits_in_a_body_are_refused(env):
    h = env.bearer(await env.user("boss", "admin"))
    r = await env.client.post("/api/v1/cameras", headers={**h, "Content-Type": "application/json"},
                              data=f'{{"name": "c", "driver": "sim", "room_id": {BIG}}}')
    assert r.status_code == 400 and "64 bits" in (await r.get_json())["message"]


# --- Bad input: bodies ----------------------------------------------------------------------

async def test_body_not_utf8_on_every_json_route_including_login(env):
    h = env.bearer(await env.user("boss", "admin"))
    routes = sorted(set(json_routes(env.app)))
    assert ("POST", "/api/v1/auth/login") in routes and len(routes) >= 8
    for method, path in routes:
        headers = {"Content-Type": "application/json"}
        if path != "/api/v1/auth/login":
            headers.update(h)
        r = await env.client.open(path, method=method, headers=headers, data=b'{"name": "\xff\xfe caf\xe9"}')
        assert r.status_code == 400, (method, path, r.status_code)
        assert "not valid UTF-8" in (await r.get_json())["message"], (method, path)


async def test_json_nested_100000_deep_is_refused(env):
    h = env.bearer(await env.user("boss", "admin"))
    deep = b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for path, headers in [("/api/v1/auth/login", {}), ("/api/v1/rooms", h)]:
        r = await env.client.post(path, headers={**headers, "Content-Type": "application/json"}, data=deep)
        assert r.status_code == 400, path
        assert "deeper than 32" in (await r.get_json())["message"]
    # Brackets inside strings are text, not nesting.
    r = await env.client.post("/api/v1/rooms", headers={**h, "Content-Type": "application/json"},
                              data=b'{"name": "' + b"[" * 100 + b'"}')
    assert r.status_code == 201


async def test_nan_or_infinity_in_clip_ranges(env):
    h = {**env.bearer(await env.user("op", "operator")), "Content-Type": "application/json"}
    for text in ['{"start_s": NaN, "end_s": 2}', '{"start_s": 0, "end_s": Infinity}',
                 '{"start_s": -Infinity, "end_s": 2}', '{"start_s": 0, "end_s": 1e400}']:
        r = await env.client.post("/api/v1/recordings/1/clips", headers=h, data=text)
        assert r.status_code == 400, text
        assert (await r.get_json())["error"] == "invalid_request"


async def test_media_start_nan_is_refused(env_factory):
    env = await env_factory(segment_seconds=2)
    studio, rec = await recorded(env)
    track = rec["tracks"][0]
    for query in ["?start=nan", "?start=inf", "?end=-inf", "?start=NaN&end=2", "?start=abc"]:
        r = await studio.media(rec["id"], track["id"], query)
        assert r.status_code == 400, query
        body = await r.get_json()
        assert body["error"] == "invalid_request" and set(body["details"]["fields"]) <= {"start", "end"}


# --- Bad input: clip jobs -------------------------------------------------------------------

async def test_duplicate_track_ids_in_a_clip_are_refused(env):
    h = env.bearer(await env.user("op", "operator"))
    r = await env.client.post("/api/v1/recordings/1/clips", headers=h,
                              json={"start_s": 0, "end_s": 2, "track_ids": [1] * 20})
    assert r.status_code == 400
    assert "each track once" in (await r.get_json())["details"]["fields"]["track_ids"]


async def test_empty_track_ids_is_not_taken_as_all_tracks(env):
    h = env.bearer(await env.user("op", "operator"))
    r = await env.client.post("/api/v1/recordings/1/clips", headers=h,
                              json={"start_s": 0, "end_s": 2, "track_ids": []})
    assert r.status_code == 400 and "track_ids" in (await r.get_json())["details"]["fields"]


async def test_clip_jobs_are_queued_and_bounded_per_user_and_in_total(env_factory, monkeypatch):
    from valt_core.media import clips

    env = await env_factory(segment_seconds=2, clip_jobs_running=1, clip_jobs_running_per_user=1,
                            clip_jobs_queued_per_user=3)
    studio, rec = await recorded(env)
    other = env.bearer(await env.user("op2", "operator"))
    body = {"start_s": rec["tracks"][0]["start_s"], "end_s": rec["tracks"][0]["end_s"]}
    url = f"/api/v1/recordings/{rec['id']}/clips"
    # Builds wait at a gate until every request is in, so a quick build cannot free a place early.
    gate = asyncio.Event()
    real_build = clips.build_track_file

    building = [0]
    built_at_once = set()

    async def gated_build(*args, **kwargs):
        await gate.wait()
        # Counted around the build itself: polling each clip's state in turn is no snapshot
        # (one may end and the next start between two reads).
        building[0] += 1
        built_at_once.add(building[0])
        try:
            return await real_build(*args, **kwargs)
        finally:
            building[0] -= 1

    monkeypatch.setattr(clips, "build_track_file", gated_build)
    answers = await asyncio.gather(*[env.client.post(url, headers=studio.h, json=body) for _ in range(5)])
    answers = sorted(answers, key=lambda a: a.status_code)
    assert [a.status_code for a in answers] == [202, 202, 202, 409, 409]
    refused = await answers[3].get_json()
    assert refused["error"] == "conflict" and "3 clip jobs" in refused["message"]
    # One runs at once in total: the second and third wait, and say where they are.
    jobs = [await a.get_json() for a in answers[:3]]
    jobs.sort(key=lambda j: j["id"])
    assert [j["queue_position"] for j in jobs] == [None, 1, 2]
    mine = await (await env.client.post(url, headers=other, json=body)).get_json()
    assert mine["state"] == "queued" and mine["queue_position"] == 3
    # A clip not built yet is a state, not a bad request.
    r = await env.client.get(f"/api/v1/clips/{mine['id']}/download", headers=other)
    assert r.status_code == 409 and "not ready" in (await r.get_json())["message"]
    gate.set()

    async def state(clip_id):
        return await (await env.client.get(f"/api/v1/clips/{clip_id}", headers=studio.h)).get_json()

    async def all_done():
        states = [await state(c["id"]) for c in [*jobs, mine]]
        return all(s["state"] == "done" for s in states) and states

    states = await wait_for(all_done, 60, "every clip to be built", step=0.05)
    assert built_at_once == {1}
    assert all(s["queue_position"] is None and s["progress"] == 1.0 for s in states)
    # With the queue emptied, the user may ask again.
    assert (await env.client.post(url, headers=studio.h, json=body)).status_code == 202


async def test_a_done_clip_has_progress_1(env_factory):
    env = await env_factory(segment_seconds=2, clip_jobs_running=4, clip_jobs_running_per_user=4)
    studio, rec = await recorded(env, cameras={"a": SIM, "b": SIM})
    t0, t1 = rec["tracks"][0]["start_s"], rec["tracks"][0]["end_s"]
    ids = []
    for n in range(8):
        r = await env.client.post(f"/api/v1/recordings/{rec['id']}/clips", headers=studio.h,
                                  json={"start_s": t0 + n * 0.1, "end_s": t1, "exact": n % 2 == 1})
        assert r.status_code == 202
        ids.append((await r.get_json())["id"])

    async def finished():
        out = [await (await env.client.get(f"/api/v1/clips/{i}", headers=studio.h)).get_json() for i in ids]
        return all(c["state"] == "done" for c in out) and out

    clips = await wait_for(finished, 90, "the clips")
    await asyncio.sleep(0.5)  # let any late progress report from a build thread land
    clips = [await (await env.client.get(f"/api/v1/clips/{i}", headers=studio.h)).get_json() for i in ids]
    assert [c["progress"] for c in clips] == [1.0] * len(ids)


async def test_a_late_progress_report_cannot_overwrite_done(env_factory):
    env = await env_factory(segment_seconds=2)
    studio, rec = await recorded(env)
    clip_id = (await whole_track_clip(env, studio, rec))["id"]
    # What a build thread's report arriving after the end does:
    await env.ctx.media.clips._progress(clip_id, 0.5)
    clip = await (await env.client.get(f"/api/v1/clips/{clip_id}", headers=studio.h)).get_json()
    assert (clip["state"], clip["progress"]) == ("done", 1.0)


async def test_clip_zip_is_streamed_not_held_in_memory(tmp_path):
    from valt_core.media.clips import zip_stream

    size, chunk = 8 * 2**20, 64 * 1024

    async def source(seed: int):
        block = bytes([seed]) * chunk
        for _ in range(size // chunk):
            yield block

    path = tmp_path / "clip.zip"
    largest = 0
    tracemalloc.start()
    try:
        with open(path, "wb") as out:
            async for part in zip_stream([("a.mp4", size, source(1)), ("b.mp4", size, source(2))]):
                largest = max(largest, len(part))
                out.write(part)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 16 MiB went through; at most a chunk or two was held at any time.
    assert largest <= chunk + 1024
    assert peak < 1 * 2**20
    with zipfile.ZipFile(path) as z:
        assert z.namelist() == ["a.mp4", "b.mp4"]
        assert z.read("a.mp4") == b"\x01" * size and z.read("b.mp4") == b"\x02" * size
        assert z.testzip() is None


async def test_clip_zip_download_streams_every_file_once(env_factory):
    env = await env_factory(segment_seconds=2)
    studio, rec = await recorded(env, cameras={"a": SIM, "b": SIM})
    clip = await whole_track_clip(env, studio, rec)
    clip_id = clip["id"]
    r = await env.client.get(f"/api/v1/clips/{clip_id}/download", headers=studio.h)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(await r.get_data())) as z:
        media = [n for n in z.namelist() if n != "markers.json"]
        assert sorted(z.namelist()) == sorted([*(f["name"] for f in clip["files"]), "markers.json"])
        import hashlib
        assert {hashlib.sha256(z.read(n)).hexdigest() for n in media} == {f["sha256"] for f in clip["files"]}
    assert not (env.ctx.settings.data_dir / "cache" / "clips").exists()


# --- Bad input: the database ----------------------------------------------------------------

async def test_database_or_disk_full_is_503_database_unavailable(tmp_path):
    from valt_core.app import create_app

    from .conftest import Env, make_settings

    settings = make_settings(tmp_path)
    app = create_app(settings)
    ctx = app.extensions["valt"]
    await ctx.db.upgrade()
    async with app.test_app() as test_app:
        env = Env(app=app, ctx=ctx, client=test_app.test_client())
        h = env.bearer(await env.user("boss", "admin"))

        # SQLite's own "database or disk is full": the file may not grow by another page.
        @event.listens_for(ctx.db.engine.sync_engine, "connect")
        def cap(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA page_count")
            pages = cur.fetchone()[0]
            cur.execute(f"PRAGMA max_page_count = {pages}")
            cur.close()

        await ctx.db.engine.dispose()
        r = await env.client.post("/api/v1/rooms", headers=h, json={"name": "x" * 150, "description": "y" * 500})
        for n in range(200):
            if r.status_code != 201:
                break
            r = await env.client.post("/api/v1/rooms", headers=h, json={"name": f"{n}" + "x" * 140,
                                                                        "description": "y" * 500})
        assert r.status_code == 503, await r.get_data(as_text=True)
        body = await r.get_json()
        assert body["error"] == "database_unavailable"
        assert "full" in body["message"] and "INSERT" not in body["message"]


async def test_database_gone_is_503_without_the_password(env):
    h = env.bearer(await env.user("boss", "admin"))
    # The database server goes away: nothing listens where it was (port 1 on this machine).
    secret = "s3cret-Passw0rd"
    gone = create_async_engine(f"mysql+aiomysql://valt:{secret}@127.0.0.1:1/valt", connect_args={"connect_timeout": 2})
    env.ctx.db.sessions = async_sessionmaker(gone, class_=AsyncSession, expire_on_commit=False)
    env.ctx.db.engine = gone
    env.ctx.settings.database.url = f"mysql+aiomysql://valt:{secret}@127.0.0.1:1/valt"
    try:
        for path in ["/api/v1/rooms", "/api/v1/auth/me"]:
            r = await env.client.get(path, headers=h)
            assert r.status_code == 503, path
            text = await r.get_data(as_text=True)
            body = await r.get_json()
            assert body["error"] == "database_unavailable" and "unavailable" in body["message"]
            assert secret not in text
        r = await env.client.post("/api/v1/auth/login", json={"username": "boss", "password": "correct horse 1"})
        assert r.status_code == 503 and secret not in await r.get_data(as_text=True)
    finally:
        await gone.dispose()


async def test_a_constraint_a_request_breaks_is_409_not_a_database_outage(env):
    # Found by the fuzzer: renaming a camera to a taken name while moving it to a room.
    h = env.bearer(await env.user("boss", "admin"))
    room = await (await env.client.post("/api/v1/rooms", headers=h, json={"name": "R"})).get_json()
    for name in ["a", "b"]:
        r = await env.client.post("/api/v1/cameras", headers=h, json={"name": name, "driver": "sim"})
        assert r.status_code == 201
    b = (await r.get_json())["id"]
    r = await env.client.patch(f"/api/v1/cameras/{b}", headers=h, json={"name": "a", "room_id": room["id"]})
    assert r.status_code == 409, await r.get_data(as_text=True)
    assert (await r.get_json())["error"] == "conflict"
    assert (await (await env.client.get(f"/api/v1/cameras/{b}", headers=h)).get_json())["name"] == "b"


# --- Protocol details -----------------------------------------------------------------------

async def test_405_answers_carry_an_allow_header(env):
    h = env.bearer(await env.user("boss", "admin"))
    r = await env.client.delete("/api/v1/rooms", headers=h)
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["Allow"].split(",")} >= {"GET", "POST"}
    assert (await r.get_json())["error"] == "method_not_allowed"
    r = await env.client.put("/api/v1/cameras/1", headers=h)
    assert r.status_code == 405 and {"GET", "PATCH", "DELETE"} <= set(r.headers["Allow"].replace(" ", "").split(","))


async def test_openapi_lists_real_statuses_query_parameters_and_bodies(env):
    doc = await (await env.client.get("/api/v1/openapi.json")).get_json()
    paths = doc["paths"]
    assert set(paths["/api/v1/rooms"]["post"]["responses"]) >= {"201", "400", "401", "403", "409"}
    assert "200" not in paths["/api/v1/rooms"]["post"]["responses"]
    assert "202" in paths["/api/v1/recordings/{recording_id}/clips"]["post"]["responses"]
    delete = paths["/api/v1/cameras/{camera_id}"]["delete"]["responses"]
    assert "204" in delete and "content" not in delete["204"] and "404" in delete
    assert not any(code.endswith("XX") for p in paths.values() for op in p.values() for code in op["responses"])
    listing = paths["/api/v1/recordings"]["get"]
    wanted = {p["name"]: p for p in listing["parameters"] if p["in"] == "query"}
    assert set(wanted) == {"q", "shared", "room_id", "author_id", "state", "from", "to", "limit", "offset"}
    assert wanted["room_id"]["schema"]["type"] == "integer"
    assert wanted["from"]["schema"]["format"] == "date-time"
    media = paths["/api/v1/recordings/{recording_id}/tracks/{track_id}/media"]["get"]
    assert {p["name"] for p in media["parameters"] if p["in"] == "query"} == {"start", "end"}
    assert "video/mp4" in media["responses"]["206"]["content"] and "416" in media["responses"]
    err = doc["components"]["schemas"]["Error"]
    assert err["required"] == ["error", "message"]
    assert paths["/api/v1/rooms/{room_id}"]["get"]["parameters"][0]["schema"]["maximum"] == BIG - 1
    clip = doc["components"]["schemas"]["ClipRequest"]
    tracks = [o for o in clip["properties"]["track_ids"]["anyOf"] if o.get("type") == "array"][0]
    assert tracks["uniqueItems"] is True and tracks["minItems"] == 1


async def test_enabled_0_is_not_a_boolean(env):
    h = env.bearer(await env.user("boss", "admin"))
    r = await env.client.post("/api/v1/cameras", headers=h, json={"name": "c", "driver": "sim", "enabled": 0})
    assert r.status_code == 400
    assert "enabled" in (await r.get_json())["details"]["fields"]
    r = await env.client.post("/api/v1/rooms", headers=h, json={"name": 5})
    assert r.status_code == 400
    r = await env.client.post("/api/v1/cameras", headers=h, json={"name": "c", "driver": "sim", "enabled": False})
    assert r.status_code == 201 and (await r.get_json())["enabled"] is False


async def test_an_optional_body_may_be_left_out_or_null_but_not_be_wrong(env_factory):
    env = await env_factory(segment_seconds=2)
    studio = Studio(env, await env.user("boss", "admin"))
    await studio.setup({"wide": SIM})
    url = f"/api/v1/rooms/{studio.room_id}/record/start"
    for data in [b'{"name": 3}', b"[]", b'"x"']:
        r = await env.client.post(url, headers={**studio.h, "Content-Type": "application/json"}, data=data)
        assert r.status_code == 400, data
    for data in [b"", b"null"]:
        r = await env.client.post(url, headers={**studio.h, "Content-Type": "application/json"}, data=data)
        assert r.status_code == 201, await r.get_data(as_text=True)
        assert (await r.get_json())["name"].startswith("Interview 1 ")
        await studio.record("stop")


async def test_content_disposition_has_filename_star_for_non_ascii_names(env_factory):
    env = await env_factory(segment_seconds=2)
    studio, rec = await recorded(env, cameras={"Salle d'écoute": SIM})
    clip = await whole_track_clip(env, studio, rec)
    clip_id = clip["id"]
    name = clip["files"][0]["name"]
    assert not name.isascii()
    r = await env.client.get(f"/api/v1/clips/{clip_id}/download", headers=studio.h)
    disposition = r.headers["Content-Disposition"]
    assert disposition.isascii()
    star = re.search(r"filename\*=UTF-8''(\S+)", disposition)
    assert star and unquote(star.group(1)) == f"clip-{clip_id}-{name}"
    plain = re.search(r'filename="([^"]*)"', disposition).group(1)
    assert plain.isascii() and plain.endswith(".mp4")


async def test_pages_have_a_content_security_policy(env):
    await env.user("boss", "admin")
    for path in ["/login", "/static/valt.css"]:
        r = await env.client.get(path)
        csp = r.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'" and "unsafe-inline" not in csp
        assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    # The templates have no inline script or style that such a policy would block.
    for template in (REPO / "valt_core" / "web" / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", text), template.name
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=", text), template.name


async def test_media_cache_control_is_private_and_the_docs_say_so(env_factory):
    env = await env_factory(segment_seconds=2)
    studio, rec = await recorded(env)
    r = await studio.media(rec["id"], rec["tracks"][0]["id"])
    assert r.headers["Cache-Control"] == "private, no-store"
    api_doc = (REPO / "docs" / "api.md").read_text()
    assert "max-age=43200" not in api_doc and "`Cache-Control: private, no-store`" in api_doc


def test_a_range_with_no_media_is_known_before_a_build():
    from valt_core.media.clips import has_media
    from valt_core.media.playback import SegmentRef

    # Media from 0.9 s (the first keyframe) to 4.9 s, in two segments.
    segments = [SegmentRef("a", 0.9, 2.0), SegmentRef("b", 2.9, 2.0)]
    assert not has_media(segments, 0.0, 0.5)
    assert not has_media(segments, 0.0, 0.9)
    assert has_media(segments, 0.0, 1.0) and has_media(segments, 4.8, 6.0)
    assert not has_media(segments, 4.9, 6.0) and not has_media([], 0.0, 1.0)


@pytest.mark.parametrize("header,size,expected", [
    ("bytes=0-9", 100, (0, 10)), ("bytes=90-", 100, (90, 100)), ("bytes=-10", 100, (90, 100)),
    ("bytes=-500", 100, (0, 100)), ("bytes=50-500", 100, (50, 100)), (" bytes = 1 - 2 ", 100, (1, 3)),
    ("bytes=0-1,5-6", 100, None), ("bytes=x-1", 100, None), ("bytes=9-1", 100, None), (None, 100, None),
])
def test_byte_range_reading(header, size, expected):
    from valt_core.api.media import byte_range

    assert byte_range(header, size) == expected


def test_an_id_sent_as_an_integral_number_is_that_id_and_a_fraction_is_refused():
    """JSON Schema counts 1.0 as an integer, as do clients written against the document (the
    fuzzer sent {"room_id": 1.0}); 1.5, true and "1" stay refused."""
    from pydantic import ValidationError

    from valt_core.api.devices import DeviceUpdate

    assert DeviceUpdate.model_validate({"room_id": 3.0}).room_id == 3
    for bad in (1.5, True, "1", 0.0):
        with pytest.raises(ValidationError):
            DeviceUpdate.model_validate({"room_id": bad})
