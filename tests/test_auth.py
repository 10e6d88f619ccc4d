"""Signing in: argon2 passwords, wrong passwords refused, lockout, tokens, logout."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlmodel import select

from valt_core.auth.throttle import CheckSlots
from valt_core.db.models import ApiToken, AuditEvent, LoginThrottle, User
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


def _from(addr: str) -> dict:
    return {"scope_base": {"client": (addr, 40000)}}


async def login_from(env, addr, username, password):
    return await env.client.post("/api/v1/auth/login", json={"username": username, "password": password},
                                 **_from(addr))


async def _lock_expires(env, username):
    async with env.ctx.db.session() as s:
        rows = (await s.exec(select(LoginThrottle).where(LoginThrottle.username == username))).all()
        assert rows and all(r.locked_until > utcnow() for r in rows)
        for row in rows:
            row.locked_until = utcnow() - timedelta(seconds=1)
            s.add(row)
        await s.commit()


async def test_five_wrong_passwords_lock_the_name_for_that_address(env):
    await env.user("dave", password="the right one!")
    for _ in range(4):
        assert (await login_from(env, "10.0.0.1", "dave", "wrong guess")).status_code == 401
    # A right password before the fifth failure resets the count.
    assert (await login_from(env, "10.0.0.1", "dave", "the right one!")).status_code == 200
    for _ in range(5):
        assert (await login_from(env, "10.0.0.1", "dave", "wrong guess")).status_code == 401
    locked = await login_from(env, "10.0.0.1", "dave", "the right one!")
    unknown = await login_from(env, "10.0.0.1", "nobody-at-all", "whatever")
    # Locked and unknown answer alike: the same status and words, so names cannot be probed.
    assert locked.status_code == unknown.status_code == 401
    assert (await locked.get_json()) == (await unknown.get_json())
    # The attacker's address does not lock dave out from his own desk.
    assert (await login_from(env, "10.0.0.2", "dave", "the right one!")).status_code == 200
    await _lock_expires(env, "dave")
    assert (await login_from(env, "10.0.0.1", "dave", "the right one!")).status_code == 200
    async with env.ctx.db.session() as s:
        actions = [e.action for e in (await s.exec(select(AuditEvent).order_by(AuditEvent.id))).all()]
    assert "auth.account_locked" in actions and "auth.login_refused" in actions


async def test_unknown_names_lock_like_known_ones(env):
    for _ in range(5):
        assert (await login_from(env, "10.0.0.5", "ghost", "guess")).status_code == 401
    async with env.ctx.db.session() as s:
        row = await s.get(LoginThrottle, ("ghost", "10.0.0.5"))
    assert row is not None and row.locked_until is not None and row.locked_until > utcnow()


async def test_lockout_bypass_by_concurrency(env):
    """20 simultaneous attempts, 19 wrong and 1 right: no more than the threshold are checked,
    and once it is reached every attempt is refused, the right one included."""
    await env.user("ivy", password="ivy's real password")
    env.ctx.sessions.address_limiter.per_minute = 0  # this test is about the per-name count
    checks = []
    backend = env.ctx.sessions.backends["local"]
    real_check = backend.check_password

    async def counted(username, password, stored_hash):
        checks.append(password)
        return await real_check(username, password, stored_hash)

    backend.check_password = counted
    threshold = env.ctx.settings.auth.lockout_threshold
    # An attacker who does not know the password: 20 guesses at once, at most 5 are checked.
    answers = await asyncio.gather(*(login_from(env, "10.0.0.8", "ivy", f"guess {i}") for i in range(20)))
    assert [a.status_code for a in answers] == [401] * 20
    assert len(checks) == threshold, f"{len(checks)} passwords were checked, the threshold is {threshold}"
    assert (await login_from(env, "10.0.0.8", "ivy", "ivy's real password")).status_code == 401
    checks.clear()
    # 19 wrong and the right one at once from another address: the right one may win only if it
    # is checked before the threshold (a success resets the count, as it does one at a time).
    attempts = ["wrong %d" % i for i in range(19)] + ["ivy's real password"]
    answers = await asyncio.gather(*(login_from(env, "10.0.0.9", "ivy", p) for p in attempts))
    codes = [a.status_code for a in answers]
    assert codes.count(200) <= 1 and codes.count(401) >= 19
    wrong_checked = [c for c in checks if c.startswith("wrong")]
    assert len(wrong_checked) <= (2 * threshold - 1 if codes.count(200) else threshold), wrong_checked
    # After 19 wrong ones, however they raced, the name is locked here.
    again = [a.status_code for a in await asyncio.gather(
        *(login_from(env, "10.0.0.9", "ivy", "wrong again") for _ in range(5)))]
    assert again == [401] * 5
    assert (await login_from(env, "10.0.0.9", "ivy", "ivy's real password")).status_code == 401
    async with env.ctx.db.session() as s:
        row = await s.get(LoginThrottle, ("ivy", "10.0.0.9"))
    assert row.locked_until is not None and row.locked_until > utcnow()


async def test_login_flood_from_one_address_is_rate_limited_before_hashing(env, monkeypatch):
    from valt_core.auth import sessions

    monkeypatch.setattr(sessions, "REFUSAL_DELAY_S", 0.3)
    env.ctx.sessions.address_limiter.per_minute = 6
    codes, took = [], []
    for i in range(9):
        started = time.monotonic()
        r = await login_from(env, "10.0.1.1", f"nobody{i}", "guess")
        codes.append(r.status_code)
        took.append(time.monotonic() - started)
    assert codes[:6] == [401] * 6 and codes[6:] == [429] * 3
    # A refusal is slow on purpose, so a flooding client cannot ask again at once.
    assert min(took[6:]) >= 0.3
    r = await login_from(env, "10.0.1.1", "nobody", "guess")
    assert int(r.headers["Retry-After"]) > 0
    # Another address is not held up by that one.
    assert (await login_from(env, "10.0.1.2", "nobody", "guess")).status_code == 401


async def test_password_checks_are_bounded_and_a_long_queue_is_refused(env):
    await env.user("jack", password="jack's password")
    sessions = env.ctx.sessions
    sessions.address_limiter.per_minute = 0
    sessions.check_slots = CheckSlots(1, 2)
    running = 0
    peak = 0
    backend = sessions.backends["local"]
    real_check = backend.check_password

    async def slow(username, password, stored_hash):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.2)
        running -= 1
        return await real_check(username, password, stored_hash)

    backend.check_password = slow
    answers = await asyncio.gather(*(login_from(env, f"10.0.2.{i}", "jack", "jack's password") for i in range(6)))
    codes = sorted(a.status_code for a in answers)
    assert peak == 1
    assert codes.count(200) == 3 and codes.count(503) == 3, codes
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.headers.get("Retry-After") and (await busy.get_json())["error"] == "busy"


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


def test_forwarded_client_is_believed_only_from_trusted_proxies():
    from valt_core.proxy import forwarded_client, parse_networks

    proxies = parse_networks(["127.0.0.1", "10.8.0.0/16"])
    assert forwarded_client("203.0.113.5", "1.2.3.4", proxies) == "203.0.113.5"  # not a proxy: ignored
    assert forwarded_client("127.0.0.1", "1.2.3.4", proxies) == "1.2.3.4"
    # What the client wrote itself (left) proves nothing; the right-most untrusted hop counts.
    assert forwarded_client("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.8.1.1", proxies) == "198.51.100.7"
    assert forwarded_client("127.0.0.1", "not-an-address", proxies) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", "1.2.3.4", []) == "127.0.0.1"


async def test_behind_a_proxy_throttling_keys_on_the_forwarded_client(tmp_path, database_url):
    from valt_core.app import create_app

    from .conftest import make_settings

    settings = make_settings(tmp_path, database_url)
    settings.server.trusted_proxies = ["192.0.2.1"]
    app = create_app(settings)
    ctx = app.extensions["valt"]
    await ctx.db.upgrade()
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for peer, forwarded in (("192.0.2.1", "198.51.100.7"), ("203.0.113.9", "198.51.100.8")):
            r = await client.post("/api/v1/auth/login", json={"username": "zed", "password": "guess"},
                                  headers={"X-Forwarded-For": forwarded}, scope_base={"client": (peer, 5000)})
            assert r.status_code == 401
        async with ctx.db.session() as s:
            rows = (await s.exec(select(LoginThrottle).where(LoginThrottle.username == "zed"))).all()
    # Through the proxy: the client it names; straight from elsewhere: the socket's address.
    assert sorted(r.remote_addr for r in rows) == ["198.51.100.7", "203.0.113.9"]


async def test_a_trusted_proxys_forwarded_proto_is_the_scheme_and_no_one_elses():
    from valt_core.proxy import TrustedProxies, parse_networks

    seen = []

    async def app(scope, receive, send):
        seen.append((scope["scheme"], scope["client"][0]))

    middleware = TrustedProxies(app, parse_networks(["192.0.2.1"]))
    for peer, kind, proto in (("192.0.2.1", "http", b"https"), ("192.0.2.1", "websocket", b"https, http"),
                              ("203.0.113.9", "http", b"https"), ("192.0.2.1", "http", b"gopher")):
        scope = {"type": kind, "scheme": "http" if kind == "http" else "ws", "client": (peer, 5000),
                 "headers": [(b"x-forwarded-proto", proto), (b"x-forwarded-for", b"198.51.100.7")]}
        await middleware(scope, None, None)
    assert seen == [("https", "198.51.100.7"), ("wss", "198.51.100.7"), ("http", "203.0.113.9"),
                    ("http", "198.51.100.7")]
