"""Who sees what: groups, rights with room limits, video access by author, sharing, authorship.

One real recording (a sim camera) by Alice of Unit 1, in room A, and seven kinds of people
(below). Every GET route of the API is walked with each of them, with real ids filled in, and
each answer is checked against the policy: 404 for a recording they may not see (its existence
is not revealed), 403 where they see it but may not have its files, or lack the route's right.
The changing routes are checked for the same refusals.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from valt_core.api.guard import SIGNED_IN
from valt_core.db.models import RecordingShare
from valt_core.users import create_user

from .test_bad_input import recorded, whole_track_clip
from .test_recording import wait_for

PASSWORD = "correct horse 1"
VIEW = ["rooms.view", "cameras.view", "recordings.view"]

#: Who they are: (their group's rights, how they reach Alice's recording in room A).
PEOPLE = {
    "alice": "author",            # Unit 1: made it (no video access to anyone else's)
    "carl": "group access",       # Supervisors: video access to Unit 1's members
    "vic": "shared view-only",    # Detectives: shared with them, view only
    "dana": "shared download",    # Detectives: shared with them, with download
    "olga": "room-limited",       # Clinic: every author's recordings, but in room B only
    "oscar": "other group",       # Outsiders: video access to Carl's recordings only
    "boss": "admin",
}
SEES = {"alice", "carl", "vic", "dana", "boss"}
DOWNLOADS = {"alice", "carl", "dana", "boss"}
#: Routes that hand out a recording's media as files (a view-only share gets 403).
DOWNLOAD_ROUTES = {"/api/v1/recordings/<int:recording_id>/tracks/<int:track_id>/media",
                   "/api/v1/clips/<int:clip_id>/download"}
#: Routes about the one recording (its id, or a clip, marker or share of it).
ABOUT_IT = re.compile(r"<int:(recording_id|clip_id|marker_id|share_id)>")


async def api(env, method: str, path: str, token: str, body=None):
    r = await env.client.open(path, method=method, json=body, headers=env.bearer(token))
    data = await r.get_data()
    return r.status_code, (await r.get_json()) if r.mimetype == "application/json" and data else data


async def login(env, name: str) -> str:
    r = await env.client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, await r.get_data(as_text=True)
    return (await r.get_json())["token"]


@pytest.fixture
async def site(env_factory):
    """The recording, the people, their groups and the shares, made through the API."""
    env = await env_factory(segment_seconds=1.0)
    studio, rec = await recorded(env, 2.5)
    boss = studio.h["Authorization"].split()[1]
    room_a = studio.room_id
    status, room_b = await api(env, "POST", "/api/v1/rooms", boss, {"name": "Clinic room"})
    assert status == 201
    ids = {}
    for name in PEOPLE:
        if name != "boss":
            ids[name] = (await create_user(env.ctx, name, PASSWORD, role=None)).id
    groups = {}
    for gname, members, rights, video in (
        ("Unit 1", ["alice"], VIEW + ["recordings.share", "clips.download", "clips.create", "markers.write",
                                      "recordings.record"], []),
        ("Supervisors", ["carl"], VIEW + ["clips.download"], [{"author_group_id": "Unit 1"}]),
        ("Detectives", ["vic", "dana"], VIEW, []),
        ("Clinic", ["olga"], [], [{}]),
        ("Outsiders", ["oscar"], VIEW, [{"author_id": "carl"}]),
    ):
        grants = [{"right": r} for r in rights]
        if gname == "Clinic":
            grants = [{"right": r, "room_id": room_b["id"]} for r in VIEW + ["clips.download"]]
        video = [{"author_group_id": groups[v["author_group_id"]]} if "author_group_id" in v
                 else {"author_id": ids[v["author_id"]]} if "author_id" in v else {} for v in video]
        status, group = await api(env, "POST", "/api/v1/groups", boss,
                                  {"name": gname, "members": [ids[m] for m in members], "rights": grants,
                                   "video_access": video})
        assert status == 201, group
        groups[gname] = group["id"]
    # The admin made the recording; Alice becomes its author (the right to change authors).
    status, changed = await api(env, "PATCH", f"/api/v1/recordings/{rec['id']}", boss, {"author_id": ids["alice"]})
    assert status == 200 and changed["author_id"] == ids["alice"], changed
    clip = await whole_track_clip(env, studio, rec)
    tokens = {name: await login(env, name) for name in ids} | {"boss": boss}
    # Alice shares it, view-only with Vic and with download with Dana.
    shares = {}
    for name, download in (("vic", False), ("dana", True)):
        status, share = await api(env, "POST", f"/api/v1/recordings/{rec['id']}/shares", tokens["alice"],
                                  {"user_id": ids[name], "can_download": download})
        assert status == 201, share
        shares[name] = share
    status, marker = await api(env, "POST", f"/api/v1/recordings/{rec['id']}/markers", tokens["alice"],
                               {"event": "door opens", "time_s": 1.0})
    assert status == 201, marker
    status, seg_list = await api(env, "GET", f"/api/v1/recordings/{rec['id']}/tracks/{rec['tracks'][0]['id']}"
                                             "/segments", boss)
    status, device = await api(env, "POST", "/api/v1/devices", boss, {"name": "Field phone"})
    assert status == 201, device
    cameras = (await api(env, "GET", "/api/v1/cameras", boss))[1]
    # An upload of the admin's (uploads are their uploader's alone; nobody else here may upload).
    status, upload = await api(env, "POST", "/api/v1/uploads", boss,
                               {"room_id": room_a, "files": [{"filename": "a.mp4", "size": 10}]})
    assert status == 201, upload
    return {"upload": upload, "env": env, "device_id": device["id"], "rec": rec, "clip": clip, "tokens": tokens,
            "ids": ids,
            "groups": groups, "shares": shares, "marker": marker, "room_a": room_a, "room_b": room_b["id"],
            "seq": seg_list["segments"][0]["seq"],
            "camera_id": next(c["id"] for c in cameras if c["driver"] != "mobile")}


def fill(rule: str, site: dict) -> str:
    """The rule's path with the site's real ids."""
    values = {"recording_id": site["rec"]["id"], "track_id": site["rec"]["tracks"][0]["id"],
              "seq": site["seq"], "clip_id": site["clip"]["id"], "marker_id": site["marker"]["id"],
              "share_id": site["shares"]["vic"]["id"], "room_id": site["room_a"], "camera_id": site["camera_id"],
              "group_id": site["groups"]["Unit 1"], "user_id": site["ids"]["alice"], "server_id": 1, "token": "x",
              "device_id": site["device_id"], "upload_id": site["upload"]["id"],
              "file_id": site["upload"]["files"][0]["id"]}
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), rule)


async def test_every_get_route_answers_each_kind_of_person_as_the_policy_says(site):
    env, tokens = site["env"], site["tokens"]
    access = {name: (await api(env, "GET", "/api/v1/auth/me", token))[1]["rights"] for name, token in tokens.items()}
    checked = {"404": 0, "403 download": 0, "403 right": 0, "200": 0}
    for rule in env.app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or "GET" not in rule.methods:
            continue
        view = env.app.view_functions[rule.endpoint]
        permission = getattr(view, "valt_permission", None)
        if permission is None:
            continue  # public
        path = fill(rule.rule, site)
        for name, token in tokens.items():
            status, answer = await api(env, "GET", path, token)
            who = f"GET {rule.rule} as {name} ({PEOPLE[name]}): {status} {str(answer)[:200]}"
            if permission != SIGNED_IN and permission not in access[name]:
                assert status == 403, who
                checked["403 right"] += 1
            elif ABOUT_IT.search(rule.rule) and name not in SEES:
                assert status == 404, who
                checked["404"] += 1
            elif rule.rule in DOWNLOAD_ROUTES and name not in DOWNLOADS:
                assert status == 403, who
                checked["403 download"] += 1
            elif rule.rule.endswith("/shares") and name not in ("alice", "boss"):
                assert status in (403, 404), who  # only those who may share it see its shares
            elif re.search(r"<int:(room_id|camera_id)>", rule.rule) and name == "olga":
                assert status == 404, who  # room A and its cameras are not hers to see
            else:
                assert status in (200, 206), who
                checked["200"] += 1
    # Vic on the two download routes; Olga and Oscar on every route about the recording.
    assert checked["403 download"] == 2 and checked["404"] >= 16 and checked["200"] >= 50, checked


async def test_search_the_list_and_shared_with_me_follow_the_policy(site):
    env, tokens, rec_id = site["env"], site["tokens"], site["rec"]["id"]
    for name, token in tokens.items():
        status, page = await api(env, "GET", "/api/v1/recordings?q=door", token)
        found = [r["id"] for r in page["items"]] if status == 200 else None
        if name in SEES:
            assert found == [rec_id] and page["total"] == 1, (name, page)
        else:
            assert status in (200, 403) and not found, (name, page)  # a marker's words reveal nothing
    for name in ("vic", "dana"):
        status, page = await api(env, "GET", "/api/v1/recordings?shared=me", tokens[name])
        assert [r["id"] for r in page["items"]] == [rec_id], page
    status, page = await api(env, "GET", "/api/v1/recordings?shared=me", tokens["carl"])
    assert page["items"] == [], page  # Carl sees it by group access, not by a share

    # Unsharing ends Vic's view at once; an expired share shows nothing either.
    status, _ = await api(env, "DELETE", f"/api/v1/shares/{site['shares']['vic']['id']}", tokens["alice"])
    assert status == 204
    assert (await api(env, "GET", f"/api/v1/recordings/{rec_id}", tokens["vic"]))[0] == 404
    for until in ("2020-01-01T00:00:00+00:00", "2030-01-01T00:00:00"):
        status, answer = await api(env, "POST", f"/api/v1/recordings/{rec_id}/shares", tokens["alice"],
                                   {"user_id": site["ids"]["vic"], "until": until})
        assert status == 400 and "until" in answer["details"]["fields"], answer  # past, or without a zone
    soon = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    status, share = await api(env, "POST", f"/api/v1/recordings/{rec_id}/shares", tokens["alice"],
                              {"user_id": site["ids"]["vic"], "until": soon})
    assert status == 201 and share["until"] is not None, share
    assert (await api(env, "GET", f"/api/v1/recordings/{rec_id}", tokens["vic"]))[0] == 200
    async with env.ctx.db.session() as s:  # a day later: the share has ended
        row = await s.get(RecordingShare, share["id"])
        row.until = datetime.now(timezone.utc) - timedelta(seconds=1)
        s.add(row)
        await s.commit()
    assert (await api(env, "GET", f"/api/v1/recordings/{rec_id}", tokens["vic"]))[0] == 404
    # A share with download gives it to someone who sees the recording but lacks the right:
    # Oscar's group sees Carl's recordings (below) without clips.download.
    # Changing the author changes who sees it: Unit 1's supervisors lose it, Outsiders (Carl's) gain it.
    status, _ = await api(env, "PATCH", f"/api/v1/recordings/{rec_id}", tokens["boss"],
                          {"author_id": site["ids"]["carl"]})
    assert status == 200
    assert (await api(env, "GET", f"/api/v1/recordings/{rec_id}", tokens["oscar"]))[0] == 200
    media = f"/api/v1/recordings/{rec_id}/tracks/{site['rec']['tracks'][0]['id']}/media"
    assert (await api(env, "GET", media, tokens["oscar"]))[0] == 403
    status, _ = await api(env, "POST", f"/api/v1/recordings/{rec_id}/shares", tokens["boss"],
                          {"user_id": site["ids"]["oscar"], "can_download": True})
    assert status == 201
    assert (await api(env, "GET", media, tokens["oscar"]))[0] == 200
    assert (await api(env, "GET", f"/api/v1/recordings/{rec_id}", tokens["alice"]))[0] == 404
    assert (await api(env, "GET", f"/api/v1/recordings/{rec_id}", tokens["carl"]))[0] == 200  # now his own


async def test_changes_are_refused_as_the_policy_says_and_audited(site):
    env, tokens, rec_id = site["env"], site["tokens"], site["rec"]["id"]
    track_id = site["rec"]["tracks"][0]["id"]
    marker = {"event": "x", "time_s": 0.5}
    # Hidden: 404 whatever the route.
    for name in ("olga", "oscar"):
        for method, path, body in (("POST", f"/api/v1/recordings/{rec_id}/markers", marker),
                                   ("PATCH", f"/api/v1/recordings/{rec_id}", {"name": "mine now"}),
                                   ("POST", f"/api/v1/recordings/{rec_id}/clips", {"start_s": 0, "end_s": 1})):
            status, answer = await api(env, method, path, tokens[name], body)
            assert status in (403, 404), (name, method, path, status, answer)  # 403: lacks the right at all
    # Vic (view-only share) may not cut a clip or share further; Dana may download but not share.
    assert (await api(env, "POST", f"/api/v1/recordings/{rec_id}/clips", tokens["vic"],
                      {"start_s": 0, "end_s": 1}))[0] == 403
    status, _ = await api(env, "POST", f"/api/v1/recordings/{rec_id}/shares", tokens["dana"],
                          {"user_id": site["ids"]["oscar"]})
    assert status == 403
    # Someone with the share right who sees it only through a share may not pass it on.
    status, _ = await api(env, "PATCH", f"/api/v1/groups/{site['groups']['Detectives']}", tokens["boss"],
                          {"rights": [{"right": r} for r in VIEW + ["recordings.share"]]})
    assert status == 200
    status, answer = await api(env, "POST", f"/api/v1/recordings/{rec_id}/shares", await login(env, "vic"),
                               {"user_id": site["ids"]["oscar"]})
    assert status == 403 and "may not share" in answer["message"], answer
    # Only the right changes the author; only a right in the room records there.
    assert (await api(env, "PATCH", f"/api/v1/recordings/{rec_id}", tokens["alice"],
                      {"author_id": site["ids"]["carl"]}))[0] == 403
    status, answer = await api(env, "POST", f"/api/v1/rooms/{site['room_a']}/record/start", tokens["alice"])
    assert status == 201, answer  # Unit 1 records in every room
    assert (await api(env, "POST", f"/api/v1/rooms/{site['room_a']}/record/stop", tokens["alice"]))[0] == 200
    # Olga's group may record in room B only: room A is not found, room B's refusal is about the room.
    status, _ = await api(env, "PATCH", f"/api/v1/groups/{site['groups']['Clinic']}", tokens["boss"],
                          {"rights": [{"right": r, "room_id": site["room_b"]} for r in VIEW + ["recordings.record"]]})
    assert status == 200
    olga = await login(env, "olga")
    assert (await api(env, "POST", f"/api/v1/rooms/{site['room_a']}/record/start", olga))[0] == 404
    status, answer = await api(env, "POST", f"/api/v1/rooms/{site['room_b']}/record/start", olga)
    assert status == 400 and "no enabled camera" in answer["message"], answer  # allowed there; no camera
    # Carl's group cannot record anywhere; Olga sees only room B (room A is not found).
    assert (await api(env, "GET", f"/api/v1/rooms/{site['room_a']}", tokens["olga"]))[0] == 404
    assert [r["id"] for r in (await api(env, "GET", "/api/v1/rooms", tokens["olga"]))[1]] == [site["room_b"]]
    assert (await api(env, "GET", f"/api/v1/recordings/{rec_id}/tracks/{track_id}/media", tokens["vic"]))[0] == 403

    # Rights limited to a room hold there only: Carl sees the recording (room A) but may rename
    # and mark only recordings of room B.
    status, _ = await api(env, "PATCH", f"/api/v1/groups/{site['groups']['Supervisors']}", tokens["boss"],
                          {"rights": [{"right": r} for r in VIEW + ["clips.download"]]
                           + [{"right": r, "room_id": site["room_b"]} for r in ("recordings.edit", "markers.write")]})
    assert status == 200
    carl = await login(env, "carl")
    assert (await api(env, "GET", f"/api/v1/recordings/{rec_id}", carl))[0] == 200
    assert (await api(env, "PATCH", f"/api/v1/recordings/{rec_id}", carl, {"name": "renamed"}))[0] == 403
    assert (await api(env, "POST", f"/api/v1/recordings/{rec_id}/markers", carl, marker))[0] == 403
    assert (await api(env, "POST", f"/api/v1/recordings/{rec_id}/markers", tokens["alice"], marker))[0] == 201

    # Every share and group change is in the audit log.
    async def audited():
        status, log = await api(env, "GET", "/api/v1/audit?limit=200", tokens["boss"])
        actions = [e["action"] for e in log["events"]]
        return {"group.create", "group.change", "recording.share", "recording.change"} <= set(actions)
    await wait_for(audited, 10, "the audit entries")


async def test_group_input_is_checked_and_built_in_groups_are_kept(site):
    env, boss = site["env"], site["tokens"]["boss"]
    for body, field in (({"name": "g", "rights": [{"right": "everything"}]}, "rights.0.right"),
                        ({"name": "g", "rights": [{"right": "users.manage", "room_id": site["room_a"]}]},
                         "rights.0.room_id"),
                        ({"name": "g", "members": [999999]}, "members"),
                        ({"name": "g", "video_access": [{"author_id": 1, "author_group_id": 1}]}, "video_access.0")):
        status, answer = await api(env, "POST", "/api/v1/groups", boss, body)
        assert status == 400 and any(k.startswith(field) for k in answer["details"]["fields"]), (body, answer)
    status, groups = await api(env, "GET", "/api/v1/groups", boss)
    builtin = {g["builtin"]: g for g in groups if g["builtin"]}
    assert set(builtin) == {"admin", "operator", "viewer"}
    assert (await api(env, "DELETE", f"/api/v1/groups/{builtin['viewer']['id']}", boss))[0] == 409
    assert (await api(env, "PATCH", f"/api/v1/groups/{builtin['admin']['id']}", boss, {"rights": []}))[0] == 409
    status, _ = await api(env, "PATCH", f"/api/v1/groups/{builtin['admin']['id']}", boss, {"members": []})
    assert status == 409  # the last admin does not lock themselves out
    # Deleting a group takes away what it gave: Carl no longer sees Unit 1's recording.
    assert (await api(env, "DELETE", f"/api/v1/groups/{site['groups']['Supervisors']}", boss))[0] == 204
    assert (await api(env, "GET", f"/api/v1/recordings/{site['rec']['id']}", site["tokens"]["carl"]))[0] == 403


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_users_own_rights_add_to_their_groups_and_only_an_admin_sets_them(env):
    boss = await env.user("boss", "admin")
    pat = await env.user("pat", "viewer")
    uid = (await api(env, "GET", "/api/v1/auth/me", pat))[1]["id"]
    status, room = await api(env, "POST", "/api/v1/rooms", boss, {"name": "Room 9"})
    assert status == 201
    before = (await api(env, "GET", "/api/v1/auth/me", pat))[1]["rights"]
    assert "recordings.record" not in before and "rooms.view" in before
    grants = {"rights": [{"right": "recordings.record", "room_id": room["id"]}, {"right": "system.view"}]}
    assert (await api(env, "PUT", f"/api/v1/users/{uid}/rights", pat, grants))[0] == 403  # not an admin
    status, stored = await api(env, "PUT", f"/api/v1/users/{uid}/rights", boss, grants)
    assert status == 200 and stored == [{"right": "recordings.record", "room_id": room["id"]},
                                        {"right": "system.view", "room_id": None}], stored
    after = (await api(env, "GET", "/api/v1/auth/me", pat))[1]["rights"]
    assert after["recordings.record"] == [room["id"]] and after["system.view"] is None
    assert {k: v for k, v in after.items() if k in before} == before  # the group's rights are all still there
    assert (await api(env, "GET", "/api/v1/plugins", pat))[0] == 200
    for bad, field in (({"rights": [{"right": "no.such"}]}, "rights.0.right"),
                       ({"rights": [{"right": "system.view", "room_id": room["id"]}]}, "rights.0.room_id"),
                       ({"rights": [{"right": "live.watch", "room_id": 999}]}, "rights.0.room_id")):
        status, answer = await api(env, "PUT", f"/api/v1/users/{uid}/rights", boss, bad)
        assert status == 400 and field in answer["details"]["fields"], answer
    assert (await api(env, "GET", f"/api/v1/users/{uid}/rights", boss))[1] == stored  # nothing lost
    assert (await api(env, "PUT", f"/api/v1/users/{uid}/rights", boss, {"rights": []}))[1] == []
    assert (await api(env, "GET", "/api/v1/plugins", pat))[0] == 403
    assert (await api(env, "GET", "/api/v1/users/9999/rights", boss))[0] == 404
