"""The core side of sign-in shared by every backend: redirect flows used once, memberships a
directory gives kept apart from those an admin gives, and a provider never taking over a local
account of the same name."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from valt_core.auth.access import sync_source_groups
from valt_core.auth.base import Identity, SignInRefused
from valt_core.db.models import Group, GroupMember, SignInFlow, User
from valt_core.db.types import utcnow


async def test_a_flow_is_taken_once_by_its_own_backend_and_not_after_it_expired(env):
    flows = env.ctx.sessions.flows
    await flows.open("state-1", "oidc", {"verifier": "v1"}, "/review", "browser-1")
    assert await flows.take("state-1", "saml") is None  # another backend's callback: gone, unused
    await flows.open("state-2", "oidc", {"verifier": "v2"}, "/", None)
    flow = await flows.take("state-2", "oidc")
    assert flow is not None and flows.data(flow) == {"verifier": "v2"} and flow.browser_hash == ""
    assert await flows.take("state-2", "oidc") is None  # a replayed answer finds nothing
    await flows.open("state-3", "oidc", {}, "/", "b")
    async with env.ctx.db.session() as s:
        row = (await s.exec(select(SignInFlow))).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        s.add(row)
        await s.commit()
    assert await flows.take("state-3", "oidc") is None
    async with env.ctx.db.session() as s:
        assert "state-3" not in [r.state_hash for r in (await s.exec(select(SignInFlow))).all()]  # stored hashed


async def test_memberships_from_a_directory_follow_it_and_an_admins_stay(env):
    await env.user("dana", "viewer")
    async with env.ctx.db.session() as s:
        uid = (await s.exec(select(User.id).where(User.username == "dana"))).one()
        s.add_all([Group(name="Detectives"), Group(name="Unit 7"), Group(name="Trainers")])
        await s.commit()
        names = await sync_source_groups(s, uid, "ldap", ["Detectives", "Unit 7", "No such group"])
        await s.commit()
        assert names == ["Detectives", "Unit 7"]
        trainers = (await s.exec(select(Group.id).where(Group.name == "Trainers"))).one()
        s.add(GroupMember(group_id=trainers, user_id=uid))  # an admin's
        await s.commit()
        assert await sync_source_groups(s, uid, "ldap", ["Unit 7"]) == ["Unit 7"]
        await s.commit()
        rows = (await s.exec(select(Group.name, GroupMember.source).join(GroupMember)
                             .where(GroupMember.user_id == uid))).all()
    assert sorted(rows) == [("Trainers", ""), ("Unit 7", "ldap"), ("Viewers", "")]


async def test_a_provider_cannot_sign_in_as_a_local_user_of_the_same_name(env):
    await env.user("boss", "admin")
    with pytest.raises(SignInRefused, match="signs in another way"):
        await env.ctx.sessions.sign_in("oidc", Identity(username="boss", groups=("Administrators",)))
    issued = await env.ctx.sessions.sign_in("oidc", Identity(username="newcomer", display_name="New Comer",
                                                             groups=("Operators",)))
    assert issued.user.auth_backend == "oidc" and issued.user.display_name == "New Comer"
    me = await (await env.client.get("/api/v1/auth/me", headers=env.bearer(issued.token))).get_json()
    assert me["groups"] and [g["name"] for g in me["groups"]] == ["Operators"]
    assert "recordings.record" in me["rights"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("name", ["", " padded", "x" * 151, "tab\tname", "nul\x00"])
async def test_a_provider_user_name_valt_cannot_hold_is_refused(env, name):
    with pytest.raises(SignInRefused, match="user name Valt cannot use"):
        await env.ctx.sessions.sign_in("oidc", Identity(username=name))
