"""The audit log: read through the API and the CLI, and a keyed chain that someone with
database access cannot rewrite unnoticed.

Each test is named after a finding of the hardening review (issue 9) that it failed on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

from sqlmodel import select

from valt_core.audit import AuditLog, event_hash
from valt_core.context import ValtContext
from valt_core.db.models import AuditEvent

from .test_cli import run


async def _rewrite_chain(env, key: bytes | None, edit) -> None:
    """What an intruder with database access would do: edit events, recompute every hash."""
    async with env.ctx.db.session() as s:
        events = (await s.exec(select(AuditEvent).order_by(AuditEvent.id))).all()
        prev = ""
        for event in events:
            edit(event)
            event.prev_hash = prev
            event.hash = event_hash(prev, event, key)
            prev = event.hash
            s.add(event)
        await s.commit()


async def test_there_is_no_way_to_read_the_audit_log(env):
    admin = env.bearer(await env.user("root", "admin"))
    viewer = env.bearer(await env.user("val", "viewer"))
    for _ in range(3):
        await env.client.post("/api/v1/auth/login", json={"username": "val", "password": "wrong"})
    await env.client.post("/api/v1/rooms", json={"name": "Room 1"}, headers=admin)
    assert (await env.client.get("/api/v1/audit", headers=viewer)).status_code == 403
    assert (await env.client.get("/api/v1/audit")).status_code == 401
    r = await env.client.get("/api/v1/audit?action=auth.login_failed", headers=admin)
    assert r.status_code == 200
    page = await r.get_json()
    assert [e["actor"] for e in page["events"]] == ["val"] * 3 and page["next_before_id"] is None
    r = await env.client.get("/api/v1/audit?actor=root&target_type=room", headers=admin)
    (created,) = (await r.get_json())["events"]
    assert created["action"] == "room.create" and created["detail"] == {"name": "Room 1"}
    # Paging: two at a time, newest first, until next_before_id is null.
    seen, before = [], None
    while True:
        r = await env.client.get("/api/v1/audit?limit=2" + (f"&before_id={before}" if before else ""), headers=admin)
        page = await r.get_json()
        seen += [e["id"] for e in page["events"]]
        before = page["next_before_id"]
        if before is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) >= 7
    r = await env.client.get("/api/v1/audit?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z", headers=admin)
    assert (await r.get_json())["events"] == []
    assert (await env.client.get("/api/v1/audit?since=yesterday", headers=admin)).status_code == 400
    assert (await env.client.get("/api/v1/audit?limit=0", headers=admin)).status_code == 400
    # Reading the log is itself in the log.
    r = await env.client.get("/api/v1/audit?action=audit.read", headers=admin)
    assert len((await r.get_json())["events"]) >= 5


async def test_rewritten_audit_history_is_detected(env):
    await env.user("hank")
    await env.client.post("/api/v1/auth/login", json={"username": "hank", "password": "bad password"})
    assert (await env.ctx.audit.check()).intact
    # The old, unkeyed chain could be recomputed by anyone: now that fails on the first event.
    await _rewrite_chain(env, None, lambda e: setattr(e, "remote_addr", "10.9.9.9"))
    report = await env.ctx.audit.check()
    assert not report.intact and report.first_bad is not None
    # So does recomputing it with a guessed key, or the media secret.
    for key in (b"guess", env.ctx.secret):
        await _rewrite_chain(env, key, lambda e: None)
        assert await env.ctx.audit.verify() is not None
    # With the real key it holds again; then a removed event breaks it.
    await _rewrite_chain(env, env.ctx.audit.key, lambda e: None)
    await env.ctx.audit.record("test.last")
    assert (await env.ctx.audit.check()).intact
    async with env.ctx.db.session() as s:
        victim = (await s.exec(select(AuditEvent).where(AuditEvent.action == "auth.login_failed"))).first()
        await s.delete(victim)
        await s.commit()
    report = await env.ctx.audit.check()
    assert report.first_bad == victim.id + 1 and "removed" in report.problems[0]


async def test_events_cut_from_the_end_of_the_audit_log_are_detected(env):
    for i in range(3):
        await env.ctx.audit.record("test.event", actor_name=f"n{i}")
    assert (await env.ctx.audit.check()).intact
    async with env.ctx.db.session() as s:
        newest = (await s.exec(select(AuditEvent).order_by(AuditEvent.id.desc()))).first()
        await s.delete(newest)
        await s.commit()
    report = await env.ctx.audit.check()
    assert not report.intact and report.first_bad == newest.id and "end of the log" in report.problems[0]


async def test_two_processes_appending_keep_one_chain(env):
    other = ValtContext.build(env.ctx.settings)
    try:
        logs = [env.ctx.audit, AuditLog(env.ctx.db, env.ctx.audit.key), other.audit]
        await asyncio.gather(*(logs[i % 3].record("test.race", actor_name=f"w{i}") for i in range(30)))
    finally:
        await other.db.dispose()
    report = await env.ctx.audit.check()
    assert report.intact and report.events == 30


def test_audit_verify_and_list_commands(tmp_path):
    assert run(tmp_path, "db", "upgrade").returncode == 0
    add = run(tmp_path, "user", "add", "ops", "--admin", "--password-stdin", input="ops password 1\n")
    assert add.returncode == 0, add.stderr
    ok = run(tmp_path, "audit", "verify")
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stdout + ok.stderr
    listed = run(tmp_path, "audit", "list", "--action", "user", "--json")
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert listed.returncode == 0 and [e["action"] for e in events] == ["user.create"]
    assert events[0]["detail"] == {"username": "ops", "role": "admin"}
    # Edit the database behind Valt's back, the way an intruder would, hashes recomputed.
    import sqlite3

    db = sqlite3.connect(tmp_path / "data" / "valt.db")
    rows = db.execute("SELECT id, prev_hash, hash FROM audit_events ORDER BY id").fetchall()
    db.execute("UPDATE audit_events SET actor_name = 'someone else' WHERE id = ?", (rows[0][0],))
    db.execute("UPDATE audit_events SET hash = ? WHERE id = ?", (hashlib.sha256(b"forged").hexdigest(), rows[0][0]))
    db.commit()
    db.close()
    bad = run(tmp_path, "audit", "verify")
    assert bad.returncode == 3 and "NOT intact" in bad.stdout and "PROBLEM: event" in bad.stdout
