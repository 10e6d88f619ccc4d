"""Signing in: argon2 passwords, wrong passwords refused, lockout, tokens, logout."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from valt_core.db.models import ApiToken, AuditEvent, User
from valt_core.db.types import utcnow


async def login(env, username, password):
    return await env.client.post("/api/v1/auth/login", json={"username": username, "password": password})


async def test_right_password_gives_a_token_that_works(env):
    token = await env.user("alice", "operator")
    r = await env.client.get("/api/v1/auth/me", headers=env.bearer(token))
    assert r.status_code == 200
    me = await r.get_json()
    assert me["username"] == "alice" and me["role"] == "operator"
    assert "password_hash" not in me


async def test_password_is_stored_as_argon2id(env):
    await env.user("bob")
    async with env.ctx.db.session() as s:
        user = (await s.exec(select(User).where(User.username == "bob"))).one()
    assert user.password_hash.startswith("$argon2id$")
    assert "correct horse" not in user.password_hash


async def test_wrong_password_and_unknown_user_fail_alike(env):
    await env.user("carol")
    wrong = await login(env, "carol", "not the password")
    unknown = await login(env, "nobody", "whatever123")
    assert wrong.status_code == unknown.status_code == 401
    assert (await wrong.get_json())["message"] == (await unknown.get_json())["message"]
    assert "token" not in await wrong.get_json()


async def test_five_wrong_passwords_lock_the_account(env):
    await env.user("dave", password="the right one!")
    for _ in range(4):
        assert (await login(env, "dave", "wrong guess")).status_code == 401
    # A right password before the fifth failure resets the count.
    assert (await login(env, "dave", "the right one!")).status_code == 200
    for _ in range(5):
        assert (await login(env, "dave", "wrong guess")).status_code == 401
    locked = await login(env, "dave", "the right one!")
    assert locked.status_code == 423
    assert "locked" in (await locked.get_json())["message"]
    # Once the lock runs out the right password works again.
    async with env.ctx.db.session() as s:
        user = (await s.exec(select(User).where(User.username == "dave"))).one()
        assert user.locked_until > utcnow()
        user.locked_until = utcnow() - timedelta(seconds=1)
        s.add(user)
        await s.commit()
    assert (await login(env, "dave", "the right one!")).status_code == 200
    async with env.ctx.db.session() as s:
        actions = [e.action for e in (await s.exec(select(AuditEvent).order_by(AuditEvent.id))).all()]
    assert "auth.account_locked" in actions and "auth.login_locked" in actions


async def test_logout_revokes_the_token(env):
    token = await env.user("erin")
    assert (await env.client.post("/api/v1/auth/logout", headers=env.bearer(token))).status_code == 200
    r = await env.client.get("/api/v1/auth/me", headers=env.bearer(token))
    assert r.status_code == 401


async def test_expired_token_is_refused(env):
    token = await env.user("frank")
    async with env.ctx.db.session() as s:
        for row in (await s.exec(select(ApiToken))).all():
            row.expires_at = utcnow() - timedelta(seconds=1)
            s.add(row)
        await s.commit()
    assert (await env.client.get("/api/v1/auth/me", headers=env.bearer(token))).status_code == 401


async def test_tokens_are_stored_hashed(env):
    token = await env.user("gina")
    async with env.ctx.db.session() as s:
        rows = (await s.exec(select(ApiToken))).all()
    assert rows and all(token not in (r.token_hash or "") for r in rows)


async def test_garbage_bearer_and_wrong_scheme_are_refused(env):
    for header in ("Bearer nonsense", "Basic YWRtaW46YWRtaW4=", "Bearer "):
        r = await env.client.get("/api/v1/auth/me", headers={"Authorization": header})
        assert r.status_code == 401


async def test_malformed_login_body_is_a_clear_400(env):
    r = await env.client.post("/api/v1/auth/login", json={"username": "x"})
    assert r.status_code == 400
    body = await r.get_json()
    assert body["error"] == "invalid_request" and "password" in body["details"]["fields"]
    r = await env.client.post("/api/v1/auth/login", data="not json")
    assert r.status_code == 400


async def test_audit_chain_holds_and_detects_an_edit(env):
    await env.user("hank")
    await login(env, "hank", "bad password")
    assert await env.ctx.audit.verify() is None
    async with env.ctx.db.session() as s:
        event = (await s.exec(select(AuditEvent).where(AuditEvent.action == "auth.login_failed"))).first()
        event.remote_addr = "10.9.9.9"
        s.add(event)
        await s.commit()
    assert await env.ctx.audit.verify() == event.id
