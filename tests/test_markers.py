"""Issue 11, marking moments: markers on a running and a stopped recording, who may change them,
what is refused, the CSV export, the audit log and the plugin hooks (on SQLite and on MariaDB).

The journey uses a real recording of a sim camera. The other tests put a stopped recording of
known length straight into the database (the rows a recorder writes), so that the edges of "within
the recording" are exact and the tests stay fast.
"""

from __future__ import annotations

import asyncio
import csv
import io

from sqlmodel import select

from valt_core import hookimpl
from valt_core.api.markers import CSV_HEADER, RUNNING_SLACK_S, clock_time, safe_cell
from valt_core.db.models import AuditEvent, Marker, Recording, Room, Segment, Track
from valt_core.users import create_user

from .test_bad_input import SIM
from .test_recording import Studio

PASSWORD = "correct horse 1"


class MarkerObserver:
    """A plugin that notes every marker hook it is called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    @hookimpl
    def valt_marker_added(self, marker_id, recording_id):
        self.calls.append(("added", marker_id, recording_id))

    @hookimpl
    async def valt_marker_changed(self, marker_id, recording_id):
        self.calls.append(("changed", marker_id, recording_id))

    @hookimpl
    def valt_marker_removed(self, marker_id, recording_id):
        self.calls.append(("removed", marker_id, recording_id))


async def person(env, name: str, role: str, display_name: str = "") -> dict[str, str]:
    """Create a user and sign them in; their bearer headers."""
    await create_user(env.ctx, name, PASSWORD, role=role, display_name=display_name)
    r = await env.client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, await r.get_data(as_text=True)
    return env.bearer((await r.get_json())["token"])


async def stopped_recording(env, length_s: float = 10.0) -> int:
    """A stopped recording whose one track holds two finished segments ending at ``length_s``."""
    async with env.ctx.db.session() as s:
        room = Room(name="Interview 2")
        s.add(room)
        await s.commit()
        await s.refresh(room)
        rec = Recording(room_id=room.id, name="Seeded", state="stopped")
        s.add(rec)
        await s.commit()
        await s.refresh(rec)
        track = Track(recording_id=rec.id, camera_name="wide", state="stopped")
        s.add(track)
        await s.commit()
        await s.refresh(track)
        half = length_s / 2
        s.add_all([Segment(track_id=track.id, seq=i, key=f"seeded/{rec.id}/{i}.mp4", start_s=i * half,
                           duration_s=half, complete=True) for i in range(2)])
        # An unfinished segment past the end does not make the recording longer.
        s.add(Segment(track_id=track.id, seq=2, key=f"seeded/{rec.id}/2.mp4", start_s=length_s, duration_s=30.0))
        await s.commit()
        return rec.id


async def add(env, h, rec_id: int, expect: int = 201, **body):
    r = await env.client.post(f"/api/v1/recordings/{rec_id}/markers", headers=h, json=body)
    answer = await r.get_json()
    assert r.status_code == expect, answer
    return answer


async def listed(env, h, rec_id: int) -> list[dict]:
    r = await env.client.get(f"/api/v1/recordings/{rec_id}/markers", headers=h)
    assert r.status_code == 200, await r.get_data(as_text=True)
    return await r.get_json()


async def audit(env, action: str) -> list[AuditEvent]:
    async with env.ctx.db.session() as s:
        return list((await s.exec(select(AuditEvent).where(AuditEvent.action == action)
                                  .order_by(AuditEvent.id))).all())


def refused_field(answer: dict) -> set[str]:
    """The fields a 400 answer names."""
    return set(answer.get("details", {}).get("fields", {}))


# --- pure logic ---------------------------------------------------------------------------

def test_clock_time_and_formula_cells():
    assert clock_time(0) == "0:00:00.000"
    assert clock_time(3723.5) == "1:02:03.500"
    assert clock_time(59.9996) == "0:01:00.000"  # rounded to the millisecond, carried over
    for risky in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(risky) == "'" + risky
    assert safe_cell("Door opened") == "Door opened" and safe_cell("") == ""


# --- a real recording: live, then in review --------------------------------------------------

async def test_markers_on_a_running_then_a_stopped_recording(env):
    observer = MarkerObserver()
    env.ctx.plugins.pm.register(observer)
    admin = Studio(env, await env.user("boss", "admin"))
    await admin.setup({"wide": SIM})
    op = await person(env, "olivia", "operator", "Olivia")
    rec = await admin.record("start", expect=201)
    rec_id = rec["id"]
    await asyncio.sleep(1.0)

    # Live: at the recording clock (a little past it is fine: the browser's clock lags) ...
    elapsed = (await admin.recording(rec_id))["elapsed_s"]
    live = await add(env, op, rec_id, event="Child enters", time_s=elapsed)
    assert live["time_s"] == elapsed and live["color"] == "blue" and live["hex_color"] == "#1a73e8"
    me = await (await env.client.get("/api/v1/auth/me", headers=op)).get_json()
    assert (live["author_id"], live["author"]) == (me["id"], "Olivia")
    assert live["duration_s"] is None and live["updated_at"] is None
    assert live["recording_id"] == rec_id and live["created_at"]
    await add(env, op, rec_id, event="Just now", time_s=elapsed + 0.5)
    # ... but not where the recording has not got to.
    ahead = await add(env, op, rec_id, expect=400, event="Too soon", time_s=elapsed + RUNNING_SLACK_S + 5)
    assert refused_field(ahead) == {"time_s"}
    # While paused, the clock stands still: wall time passing does not lengthen the recording.
    await admin.record("pause")
    paused_at = (await admin.recording(rec_id))["elapsed_s"]
    await asyncio.sleep(0.5)
    assert (await admin.recording(rec_id))["elapsed_s"] == paused_at
    await add(env, op, rec_id, expect=400, event="Paused", time_s=paused_at + RUNNING_SLACK_S + 0.4)
    await admin.record("resume")
    await asyncio.sleep(1.0)
    rec = await admin.record("stop")

    # Stopped: the recording ends where its last segment ends.
    end = max(t["end_s"] for t in rec["tracks"])
    assert end > 1.0
    tail = await add(env, op, rec_id, event="Leaves", time_s=round(end - 0.5, 3), duration_s=0.5, color="red")
    assert (tail["color"], tail["hex_color"], tail["duration_s"]) == ("red", "#d93025", 0.5)
    same_time = await add(env, op, rec_id, event="Also then", time_s=round(end - 0.5, 3))
    first = await add(env, op, rec_id, event="Opening", time_s=0)
    past = await add(env, op, rec_id, expect=400, event="After the end", time_s=end + 0.5)
    assert refused_field(past) == {"time_s"}
    too_long = await add(env, op, rec_id, expect=400, event="Runs over", time_s=end - 0.5, duration_s=1.0)
    assert refused_field(too_long) == {"duration_s"}

    # In time order; two at one time in the order they were added.
    markers = await listed(env, op, rec_id)
    assert [m["event"] for m in markers] == ["Opening", "Child enters", "Just now", "Leaves", "Also then"]
    assert [m["id"] for m in markers][3:] == [tail["id"], same_time["id"]]

    r = await env.client.patch(f"/api/v1/markers/{live['id']}", headers=op, json={"event": "Child enters, sits"})
    assert r.status_code == 200 and (await r.get_json())["event"] == "Child enters, sits"
    r = await env.client.delete(f"/api/v1/markers/{first['id']}", headers=op)
    assert r.status_code == 204
    assert first["id"] not in [m["id"] for m in await listed(env, op, rec_id)]

    # Plugins heard each change, with the marker and its recording.
    added = [("added", m["id"], rec_id) for m in (live, markers[2], tail, same_time, first)]
    assert observer.calls == [*added, ("changed", live["id"], rec_id), ("removed", first["id"], rec_id)]
    adds = await audit(env, "marker.add")
    assert [int(e.target_id) for e in adds] == [c[1] for c in added]
    assert all(e.target_type == "marker" and e.detail["recording_id"] == rec_id for e in adds)
    assert adds[2].detail["duration_s"] == 0.5 and adds[2].detail["color"] == "red"


# --- what is refused ------------------------------------------------------------------------

async def test_marker_bodies_that_are_refused_name_their_field(env):
    op = await person(env, "olivia", "operator")
    rec_id = await stopped_recording(env, 10.0)
    for body, field in [
        ({"event": "", "time_s": 1}, "event"),
        ({"event": "  \n\t ", "time_s": 1}, "event"),
        ({"event": "x" * 501, "time_s": 1}, "event"),
        ({"time_s": 1}, "event"),
        ({"event": "ok", "time_s": 1, "color": "pink"}, "color"),
        ({"event": "ok", "time_s": 10.5}, "time_s"),
        ({"event": "ok", "time_s": -0.1}, "time_s"),
        ({"event": "ok", "time_s": "5"}, "time_s"),
        ({"event": "ok"}, "time_s"),
        ({"event": "ok", "time_s": 9, "duration_s": 1.5}, "duration_s"),
        ({"event": "ok", "time_s": 1, "duration_s": 0}, "duration_s"),
        ({"event": "ok", "time_s": 1, "author_id": 1}, "author_id"),
    ]:
        answer = await add(env, op, rec_id, expect=400, **body)
        assert answer["error"] == "invalid_request" and refused_field(answer) == {field}, (body, answer)
    for raw in (b'{"event": "ok", "time_s": NaN}', b'{"event": "ok", "time_s": 1e400}'):
        r = await env.client.post(f"/api/v1/recordings/{rec_id}/markers", data=raw,
                                  headers={**op, "Content-Type": "application/json"})
        assert r.status_code == 400, raw
    assert await listed(env, op, rec_id) == []

    # The edges that are allowed: 500 characters, the very end, text trimmed.
    longest = await add(env, op, rec_id, event="é" * 500, time_s=10.0)
    assert longest["event"] == "é" * 500
    trimmed = await add(env, op, rec_id, event="  Door opens \n", time_s=9.0, duration_s=1.0)
    assert trimmed["event"] == "Door opens"

    # A change is checked the same way, and a refused one changes nothing.
    url = f"/api/v1/markers/{trimmed['id']}"
    for body, field in [({"event": " "}, "event"), ({"color": "pink"}, "color"), ({"time_s": 10.5}, "time_s"),
                        ({"duration_s": 1.5}, "duration_s"), ({"time_s": 9.5}, "duration_s"),
                        ({"duration_s": -1}, "duration_s"), ({"recording_id": 1}, "recording_id")]:
        r = await env.client.patch(url, headers=op, json=body)
        assert r.status_code == 400 and refused_field(await r.get_json()) == {field}, body
    [stored] = [m for m in await listed(env, op, rec_id) if m["id"] == trimmed["id"]]
    assert stored == trimmed

    # null leaves a field as it is, except the duration, which it clears.
    r = await env.client.patch(url, headers=op, json={"event": None, "time_s": 9.5, "duration_s": None})
    changed = await r.get_json()
    assert r.status_code == 200, changed
    assert (changed["event"], changed["time_s"], changed["duration_s"]) == ("Door opens", 9.5, None)
    assert changed["updated_at"] is not None


# --- who may do what --------------------------------------------------------------------------

async def test_only_the_author_or_a_marker_manager_changes_a_marker(env):
    observer = MarkerObserver()
    env.ctx.plugins.pm.register(observer)
    olivia = await person(env, "olivia", "operator", "Olivia")
    oscar = await person(env, "oscar", "operator")
    vera = await person(env, "vera", "viewer")
    boss = await person(env, "boss", "admin")
    rec_id = await stopped_recording(env)
    mine = await add(env, olivia, rec_id, event="Mine", time_s=2.0)
    his = await add(env, oscar, rec_id, event="His", time_s=3.0)
    assert his["author"] == "oscar"  # no display name: the user name

    # A viewer sees the markers but may not add one.
    assert [m["id"] for m in await listed(env, vera, rec_id)] == [mine["id"], his["id"]]
    r = await add(env, vera, rec_id, expect=403, event="Viewer", time_s=1.0)
    assert "markers.write" in r["message"]

    # Another operator may neither change nor delete it.
    url = f"/api/v1/markers/{mine['id']}"
    for method, kwargs in (("patch", {"json": {"event": "Not yours"}}), ("delete", {})):
        r = await getattr(env.client, method)(url, headers=oscar, **kwargs)
        answer = await r.get_json()
        assert r.status_code == 403 and "author" in answer["message"], answer
    assert [m["event"] for m in await listed(env, olivia, rec_id)] == ["Mine", "His"]

    # The author may.
    r = await env.client.patch(url, headers=olivia, json={"event": "Mine, reworded", "color": "green",
                                                           "duration_s": 1.5})
    changed = await r.get_json()
    assert r.status_code == 200, changed
    assert (changed["event"], changed["color"], changed["hex_color"], changed["duration_s"]) == (
        "Mine, reworded", "green", "#188038", 1.5)
    assert changed["updated_at"] and changed["author"] == "Olivia"
    # A change to what it already is changes nothing: no audit entry, no event.
    r = await env.client.patch(url, headers=olivia, json={"color": "green"})
    assert r.status_code == 200 and (await r.get_json())["updated_at"] == changed["updated_at"]

    # An admin may change and delete anyone's; the author stays who wrote it.
    r = await env.client.patch(f"/api/v1/markers/{his['id']}", headers=boss, json={"color": "purple"})
    assert r.status_code == 200 and (await r.get_json())["author"] == "oscar"
    r = await env.client.delete(f"/api/v1/markers/{his['id']}", headers=boss)
    assert r.status_code == 204
    r = await env.client.delete(url, headers=olivia)
    assert r.status_code == 204
    assert await listed(env, olivia, rec_id) == []

    # Gone, never there, or beyond any id: 404.
    for marker_id in (mine["id"], 999_999, 2**63):
        for method, kwargs in (("patch", {"json": {"event": "x"}}), ("delete", {})):
            r = await getattr(env.client, method)(f"/api/v1/markers/{marker_id}", headers=boss, **kwargs)
            assert r.status_code == 404, (method, marker_id)
    for path in ("markers", "markers.csv"):
        r = await env.client.get(f"/api/v1/recordings/999999/{path}", headers=boss)
        assert r.status_code == 404
    await add(env, boss, 999_999, expect=404, event="Nowhere", time_s=0)

    assert observer.calls == [("added", mine["id"], rec_id), ("added", his["id"], rec_id),
                              ("changed", mine["id"], rec_id), ("changed", his["id"], rec_id),
                              ("removed", his["id"], rec_id), ("removed", mine["id"], rec_id)]
    changes = await audit(env, "marker.change")
    assert [(int(e.target_id), e.actor_name) for e in changes] == [(mine["id"], "olivia"), (his["id"], "boss")]
    assert changes[0].detail == {"recording_id": rec_id, "fields": ["color", "duration_s", "event"],
                                 "before": {"event": "Mine", "color": "blue", "duration_s": None},
                                 "after": {"event": "Mine, reworded", "color": "green", "duration_s": 1.5}}
    removals = await audit(env, "marker.remove")
    assert [(int(e.target_id), e.actor_name) for e in removals] == [(his["id"], "boss"), (mine["id"], "olivia")]
    assert removals[0].detail["event"] == "His" and removals[0].detail["recording_id"] == rec_id
    async with env.ctx.db.session() as s:
        assert (await s.exec(select(Marker))).all() == []


# --- the CSV export --------------------------------------------------------------------------

async def test_markers_csv_has_every_marker_and_no_formula(env):
    olivia = await person(env, "olivia", "operator", "Olivia")
    # A display name is text people choose: it is neutralised too.
    sly = await person(env, "sly", "operator", "=cmd|' /C calc'!A0")
    rec_id = await stopped_recording(env, 4000.0)
    await add(env, olivia, rec_id, event='Said "no", then\nleft, slowly', time_s=3723.5, duration_s=12.25,
              color="orange")
    for i, risky in enumerate(['=HYPERLINK("http://evil.example/","click")', "+1 visitor", "-2 chairs",
                               "@SUM(A1:A9)"]):
        await add(env, olivia, rec_id, event=risky, time_s=10.0 + i)
    await add(env, sly, rec_id, event="Plain", time_s=1.0)

    r = await env.client.get(f"/api/v1/recordings/{rec_id}/markers.csv", headers=olivia)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    assert f'filename="recording-{rec_id}-markers.csv"' in r.headers["Content-Disposition"]
    assert r.headers["Content-Disposition"].startswith("attachment")
    rows = list(csv.reader(io.StringIO(await r.get_data(as_text=True), newline="")))
    assert rows[0] == list(CSV_HEADER)
    by_event = {row[3]: row for row in rows[1:]}
    assert len(rows) == 1 + 6
    assert [row[0] for row in rows[1:]] == ["1.000", "10.000", "11.000", "12.000", "13.000", "3723.500"]
    plain = by_event["Plain"]
    assert plain[1:3] == ["0:00:01.000", ""] and plain[4:6] == ["blue", "'=cmd|' /C calc'!A0"]
    quoted = by_event['Said "no", then\nleft, slowly']  # commas, quotes and a line break survive
    assert quoted[:3] == ["3723.500", "1:02:03.500", "12.250"] and quoted[4:6] == ["orange", "Olivia"]
    assert quoted[6].startswith("20") and "T" in quoted[6] and quoted[6].endswith("+00:00")
    for risky in ['=HYPERLINK("http://evil.example/","click")', "+1 visitor", "-2 chairs", "@SUM(A1:A9)"]:
        assert "'" + risky in by_event, risky
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    [export] = await audit(env, "marker.export")
    assert export.target_id == str(rec_id) and export.detail == {"markers": 6}


async def test_marker_lists_need_a_sign_in(env):
    rec_id = await stopped_recording(env)
    for path in ("markers", "markers.csv"):
        r = await env.client.get(f"/api/v1/recordings/{rec_id}/{path}")
        assert r.status_code == 401, path
