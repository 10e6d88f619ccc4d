"""Signing in with an LDAP directory (a real slapd with the memberof overlay, tests/peers/ldap.py):
search-and-bind and bind by DN template, LDAPS and StartTLS, directory groups as Valt groups,
the scheduled sync, and names that try to change the search filter."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr
from sqlmodel import select
from valt_auth_ldap.backend import LdapAuthBackend
from valt_auth_ldap.config import LdapAuthConfig

from valt_core.app import create_app
from valt_core.db.models import AuditEvent, Group, GroupMember, User
from valt_core.errors import DirectoryUnavailable

from .conftest import Env, make_settings
from .peers.ldap import GROUPS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Directory
from .peers.nats import free_port

# One database is enough here: what is checked is the directory side and the core's use of it.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ALICE_PASSWORD = "alice's directory password"
BOB_PASSWORD = "bob's directory password"


@pytest.fixture(scope="session")
def directory(tmp_path_factory):
    """One slapd for the module's tests: Alice (detectives, unit 7), Bob (counselors), Carol."""
    d = Directory(tmp_path_factory.mktemp("slapd"))
    alice = d.add_person("alice", ALICE_PASSWORD, "Alice Adams", "alice@valt.test")
    bob = d.add_person("bob", BOB_PASSWORD, "Bob Brown")
    d.add_person("carol", "carol's directory password", "Carol Clark")
    d.add_group("detectives", alice)
    d.add_group("unit7", alice)
    d.add_group("counselors", bob)
    yield d
    d.stop()


def options(directory: Directory, **extra) -> dict:
    """Search-and-bind with the service account over plain LDAP, two groups mapped."""
    return {"urls": [directory.url], "bind_dn": SERVICE_DN, "bind_password": SERVICE_PASSWORD,
            "user_base": PEOPLE, "group_map": {f"cn=detectives,{GROUPS}": "Detectives",
                                               f"CN=Counselors, {GROUPS.upper()}": "Counselors"}, **extra}


@pytest.fixture
async def ldap_env(tmp_path, database_url, directory):
    """The app with the ``local`` and ``ldap`` backends and the groups Detectives and Counselors."""
    settings = make_settings(tmp_path, database_url)
    settings.auth.backends = ["local", "ldap"]
    settings.auth.backend_options["ldap"] = options(directory)
    app = create_app(settings)
    ctx = app.extensions["valt"]
    await ctx.db.upgrade()
    async with ctx.db.session() as s:
        s.add_all([Group(name="Detectives"), Group(name="Counselors"), Group(name="Trainers")])
        await s.commit()
    async with app.test_app() as test_app:
        yield Env(app=app, ctx=ctx, client=test_app.test_client())


async def login(env: Env, username: str, password: str):
    r = await env.client.post("/api/v1/auth/login", json={"username": username, "password": password})
    return r.status_code, await r.get_json()


async def groups_of(env: Env, token: str) -> list[str]:
    me = await (await env.client.get("/api/v1/auth/me", headers=env.bearer(token))).get_json()
    return [g["name"] for g in me["groups"]]


@SQLITE_ONLY
async def test_a_directory_person_signs_in_with_their_password_and_gets_their_mapped_groups(ldap_env):
    status, body = await login(ldap_env, "alice", ALICE_PASSWORD)
    assert status == 200, body
    user = body["user"]
    assert (user["username"], user["auth_backend"], user["display_name"], user["email"]) == \
        ("alice", "ldap", "Alice Adams", "alice@valt.test")
    assert await groups_of(ldap_env, body["token"]) == ["Detectives"]  # unit7 is not mapped
    assert (await login(ldap_env, "alice", "wrong password"))[0] == 401
    assert (await login(ldap_env, "nobody", ALICE_PASSWORD))[0] == 401
    # The directory spells the name; "ALICE" is Alice, not a second user.
    status, again = await login(ldap_env, "ALICE", ALICE_PASSWORD)
    assert status == 200 and again["user"]["id"] == user["id"]
    async with ldap_env.ctx.db.session() as s:
        assert len((await s.exec(select(User).where(User.auth_backend == "ldap"))).all()) == 1
        methods = [(e.detail or {}).get("method") for e in (await s.exec(
            select(AuditEvent).where(AuditEvent.action == "auth.login"))).all()]
    assert methods == ["ldap", "ldap"]


@SQLITE_ONLY
@pytest.mark.parametrize("typed", ["*", "alice)(uid=*", "*)(|(uid=*", "al*", "alice\\2a", "(uid=alice)"])
async def test_a_name_built_to_change_the_search_matches_nobody(ldap_env, directory, typed):
    assert (await login(ldap_env, typed, ALICE_PASSWORD))[0] == 401
    backend = ldap_env.ctx.auth_backends["ldap"]
    conn = backend._service()
    try:
        assert backend._search_person(conn, typed) is None
        assert backend._search_person(conn, "alice") is not None  # the same search finds the real name
    finally:
        conn.unbind()


@SQLITE_ONLY
async def test_the_sync_disables_who_left_the_directory_and_follows_group_changes(ldap_env, directory):
    _, alice = await login(ldap_env, "alice", ALICE_PASSWORD)
    _, bob = await login(ldap_env, "bob", BOB_PASSWORD)
    async with ldap_env.ctx.db.session() as s:
        trainers = (await s.exec(select(Group.id).where(Group.name == "Trainers"))).one()
        s.add(GroupMember(group_id=trainers, user_id=alice["user"]["id"]))  # an admin's, kept
        await s.commit()
    detectives, counselors = f"cn=detectives,{GROUPS}", f"cn=counselors,{GROUPS}"
    bob_dn = f"uid=bob,{PEOPLE}"
    directory.set_members(detectives)
    directory.set_members(counselors, f"uid=alice,{PEOPLE}", bob_dn)
    directory.delete(bob_dn)
    try:
        results = await ldap_env.ctx.directory_sync.run_once()
        assert (results["ldap"].checked, results["ldap"].disabled, results["ldap"].failed) == (2, 1, False)
        assert sorted(await groups_of(ldap_env, alice["token"])) == ["Counselors", "Trainers"]
        r = await ldap_env.client.get("/api/v1/auth/me", headers=ldap_env.bearer(bob["token"]))
        assert r.status_code == 401  # signed out at once, not at the session's end
        assert (await login(ldap_env, "bob", BOB_PASSWORD))[0] == 401
        async with ldap_env.ctx.db.session() as s:
            actions = [e.action for e in (await s.exec(select(AuditEvent))).all()]
        assert "user.disable" in actions and "user.groups_synced" in actions
    finally:
        directory.add_person("bob", BOB_PASSWORD, "Bob Brown")
        directory.set_members(detectives, f"uid=alice,{PEOPLE}")
        directory.set_members(counselors, bob_dn)


@SQLITE_ONLY
async def test_a_directory_that_cannot_be_reached_is_a_503_and_disables_no_one(ldap_env, directory):
    env, ctx = ldap_env, ldap_env.ctx
    assert (await login(env, "carol", "carol's directory password"))[0] == 200
    # The directory moves away (a dead port, as when its server is down).
    ctx.auth_backends["ldap"].config.urls[:] = [f"ldap://127.0.0.1:{free_port()}"]
    status, body = await login(env, "carol", "carol's directory password")
    assert status == 503 and body["error"] == "directory_unavailable", body
    assert SERVICE_PASSWORD not in json.dumps(body)
    results = await ctx.directory_sync.run_once()
    assert results["ldap"].failed and results["ldap"].disabled == 0
    async with ctx.db.session() as s:
        assert not (await s.exec(select(User).where(User.username == "carol"))).one().disabled
    # A refused service account is told as that, without its password.
    ctx.auth_backends["ldap"].config.urls[:] = [directory.url]
    ctx.auth_backends["ldap"].config.bind_password = SecretStr("nope")
    status, body = await login(env, "carol", "carol's directory password")
    assert status == 503 and "service account" in body["message"] and "nope" not in json.dumps(body)


async def test_ldaps_and_starttls_check_the_directory_certificate(directory):
    ldaps = LdapAuthBackend(LdapAuthConfig(**options(directory, urls=[directory.ldaps_url],
                                                     ca_file=str(directory.ca_file))))
    found = await ldaps.check_password("alice", ALICE_PASSWORD, None)
    assert found is not None and found.groups == ("Detectives",)
    start_tls = LdapAuthBackend(LdapAuthConfig(**options(directory, start_tls=True, ca_file=str(directory.ca_file))))
    assert (await start_tls.check_password("alice", ALICE_PASSWORD, None)).username == "alice"
    assert await start_tls.check_password("alice", "wrong", None) is None
    for untrusted in (options(directory, urls=[directory.ldaps_url]), options(directory, start_tls=True)):
        with pytest.raises(DirectoryUnavailable, match="(?i)certificate"):
            await LdapAuthBackend(LdapAuthConfig(**untrusted)).check_password("alice", ALICE_PASSWORD, None)


async def test_bind_by_dn_template_without_a_service_account(directory):
    backend = LdapAuthBackend(LdapAuthConfig(urls=[directory.url], user_dn_template=f"uid={{username}},{PEOPLE}",
                                             group_map={f"cn=counselors,{GROUPS}": "Counselors"}))
    found = await backend.check_password("bob", BOB_PASSWORD, None)
    assert (found.username, found.display_name, found.groups) == ("bob", "Bob Brown", ("Counselors",))
    assert await backend.check_password("bob", "", None) is None  # an "unauthenticated bind" is no sign-in
    assert await backend.check_password("bob,ou=people", BOB_PASSWORD, None) is None
    assert await backend.look_up(["bob"]) is None  # no account to search with: the sync leaves these users


def test_settings_are_checked():
    with pytest.raises(ValueError, match="bind_dn and bind_password"):
        LdapAuthConfig(urls=["ldap://x"])
    with pytest.raises(ValueError, match="not an ldap"):
        LdapAuthConfig(urls=["http://x"], user_dn_template="uid={username}")
    with pytest.raises(ValueError, match="start_tls"):
        LdapAuthConfig(urls=["ldaps://x"], user_dn_template="uid={username}", start_tls=True)


