"""The database: migrations on SQLite and MariaDB, UTC-aware timestamps, schema checks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from valt_core.db import Database, redact_url
from valt_core.db.models import AuditEvent, Camera, Recording, Room, Segment, Track, User
from valt_core.errors import DatabaseError

EXPECTED_TABLES = {
    "users", "groups", "group_members", "rights", "rooms", "cameras", "media_servers", "recordings",
    "tracks", "segments", "gaps", "markers", "clips", "clip_files", "audit_events", "api_tokens",
    "login_throttle",
}


async def test_upgrade_creates_every_table_and_check_passes(database_url):
    db = Database(database_url)
    try:
        with pytest.raises(DatabaseError, match="is empty.*run `valt db upgrade`"):
            await db.check_schema()
        before, after = await db.upgrade()
        assert before is None and after == Database.head_revision()
        await db.check_schema()
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert EXPECTED_TABLES <= tables
        # Upgrading again is a no-op.
        assert await db.upgrade() == (after, after)
    finally:
        await db.dispose()


async def test_timestamps_round_trip_utc_aware_with_microseconds(database_url):
    db = Database(database_url)
    await db.upgrade()
    try:
        when = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
        async with db.session() as s:
            user = User(username="tz", last_login_at=when)
            s.add(user)
            await s.commit()
            uid = user.id
        async with db.session() as s:
            back = await s.get(User, uid)
        assert back.last_login_at.tzinfo is not None
        assert back.last_login_at.utcoffset() == timedelta(0)
        assert back.last_login_at == when  # same instant, microseconds kept
        assert back.created_at.tzinfo is not None
        async with db.session() as s:
            s.add(User(username="naive", last_login_at=datetime(2026, 1, 1)))
            with pytest.raises(Exception, match="naive datetime"):
                await s.commit()
    finally:
        await db.dispose()


async def test_recording_tree_and_json_columns(database_url):
    db = Database(database_url)
    await db.upgrade()
    try:
        async with db.session() as s:
            room = Room(name="Interview 1")
            s.add(room)
            await s.flush()
            cam = Camera(name="wide", driver="sim", room_id=room.id, config={"width": 640, "nested": {"a": [1, 2]}})
            s.add(cam)
            await s.flush()
            rec = Recording(room_id=room.id, name="Session")
            s.add(rec)
            await s.flush()
            track = Track(recording_id=rec.id, camera_id=cam.id, camera_name=cam.name)
            s.add(track)
            await s.flush()
            s.add(Segment(track_id=track.id, seq=1, key="r/1/000001.mp4", start_s=0.0, duration_s=2.0))
            s.add(AuditEvent(action="test", detail={"k": "v"}))
            await s.commit()
            cam_id, track_id = cam.id, track.id
        async with db.session() as s:
            assert (await s.get(Camera, cam_id)).config == {"width": 640, "nested": {"a": [1, 2]}}
            # seq is unique within a track
            s.add(Segment(track_id=track_id, seq=1, key="dup", start_s=2.0))
            with pytest.raises(sa.exc.IntegrityError):
                await s.commit()
    finally:
        await db.dispose()


async def test_unreachable_database_is_a_clear_error_without_the_password():
    db = Database("mysql+aiomysql://valt:s3cr3t-pw@127.0.0.1:1/valt", connect_timeout_s=2)
    try:
        with pytest.raises(DatabaseError) as info:
            await db.check_schema()
    finally:
        await db.dispose()
    assert "cannot reach database mysql+aiomysql://valt:***@127.0.0.1:1/valt" in info.value.message
    assert "s3cr3t" not in info.value.message


def test_redact_url():
    assert redact_url("mysql+aiomysql://u:p@h/db") == "mysql+aiomysql://u:***@h/db"
    assert redact_url("sqlite+aiosqlite:////x/valt.db") == "sqlite+aiosqlite:////x/valt.db"


async def _upgrade_to(db: Database, revision: str) -> None:
    from alembic import command

    from valt_core.db import alembic_config

    def run(conn) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(run)


async def test_upgrade_from_0001_keeps_rows_and_their_links(database_url):
    """The rebuild of SQLite tables for AUTOINCREMENT must not fire ON DELETE actions."""
    db = Database(database_url)
    try:
        await _upgrade_to(db, "0001")
        async with db.engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO rooms (id, name, description, created_at) "
                                       "VALUES (1, 'Room A', '', '2026-11-30 10:00:00')"))
            await conn.execute(sa.text("INSERT INTO cameras (id, name, room_id, driver, config, enabled, status, "
                                       "created_at) VALUES (3, 'cam', 1, 'sim', '{}', 1, 'online', "
                                       "'2026-11-30 10:00:00')"))
            await conn.execute(sa.text("INSERT INTO recordings (id, room_id, name, state, started_at, legal_hold, "
                                       "notes) VALUES (5, 1, 'r', 'stopped', '2026-11-30 10:00:00', 0, '')"))
            await conn.execute(sa.text("INSERT INTO tracks (id, recording_id, camera_id, camera_name, state, "
                                       "video_codec, audio_codec, width, height, storage_prefix) "
                                       "VALUES (7, 5, 3, 'cam', 'stopped', 'h264', '', 640, 360, 'r/5/')"))
        await db.upgrade()
        await db.check_schema()
        async with db.session() as s:
            track = await s.get(Track, 7)
            camera = await s.get(Camera, 3)
        assert track is not None and track.camera_id == 3 and track.recording_id == 5
        assert camera is not None and camera.room_id == 1 and camera.status_reason == ""
    finally:
        await db.dispose()


async def test_every_table_with_an_id_keeps_autoincrement_on_sqlite(tmp_path):
    """A migration that rebuilds a SQLite table must keep AUTOINCREMENT (0004 once lost it on markers)."""
    from sqlmodel import SQLModel

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'ids.db'}")
    try:
        await db.upgrade()
        async with db.engine.connect() as conn:
            tables = dict((await conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type='table'")).all())
        with_ids = [t.name for t in SQLModel.metadata.sorted_tables if "id" in t.c and t.c.id.primary_key]
        assert len(with_ids) >= 17
        assert [name for name in with_ids if "AUTOINCREMENT" not in tables[name]] == []
    finally:
        await db.dispose()


async def test_ids_of_deleted_rows_are_never_reused(database_url):
    """A live token or an audit entry for "camera 2" must never name another camera later."""
    db = Database(database_url)
    try:
        await db.upgrade()
        async with db.session() as s:
            first = Camera(name="a", driver="sim")
            s.add(first)
            await s.commit()
            await s.delete(first)
            await s.commit()
            second = Camera(name="b", driver="sim")
            user = User(username="u")
            s.add_all([second, user])
            await s.commit()
            await s.delete(user)
            await s.commit()
            again = User(username="v")
            s.add(again)
            await s.commit()
        assert second.id > first.id
        assert again.id > user.id
        async with db.engine.connect() as conn:
            fk = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() if db.url.startswith("sqlite") else 1
        assert fk == 1, "foreign keys must be on again after the migration"
    finally:
        await db.dispose()


async def test_migrations_build_exactly_the_models_schema(database_url):
    """The migrations and the SQLModel classes describe the same tables, columns and indexes."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    db = Database(database_url)
    try:
        await db.upgrade()

        def diff(conn):
            ctx = MigrationContext.configure(conn, opts={"compare_type": False})
            found = compare_metadata(ctx, SQLModel.metadata)
            # Foreign keys' ON DELETE is compared as text, which SQLite reports differently.
            return [d for d in found if not (isinstance(d, tuple) and d[0] in ("add_fk", "remove_fk"))]

        async with db.engine.connect() as conn:
            differences = await conn.run_sync(diff)
        assert differences == []
    finally:
        await db.dispose()


async def upgrade_to(db: Database, revision: str) -> None:
    """Migrate ``db`` up to ``revision`` only (to write rows as an older version did)."""
    from alembic import command

    from valt_core.db import alembic_config

    def run(conn):
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    await db._run_sync(run)


async def test_upgrade_to_0004_keeps_markers_as_events(database_url):
    """A marker written before 0004 (label and note) is the same moment after it, with its text."""
    db = Database(database_url)
    try:
        await upgrade_to(db, "0003")
        async with db.engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO rooms (name, description, created_at) "
                                       "VALUES ('r', '', '2026-01-01 00:00:00.000000')"))
            await conn.execute(sa.text("INSERT INTO recordings (room_id, name, state, started_at, legal_hold, notes) "
                                       "VALUES (1, 'rec', 'stopped', '2026-01-01 00:00:00.000000', 0, '')"))
            old = ((1.5, "door opened", "by staff"), (2.5, "", "only a note"), (3.5, "only a label", ""))
            for at, label, note in old:
                await conn.execute(sa.text("INSERT INTO markers (recording_id, at_s, label, note, created_at) "
                                           "VALUES (1, :at, :label, :note, '2026-01-01 00:00:00.000000')"),
                                   {"at": at, "label": label, "note": note})
        await db.upgrade()
        async with db.engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT time_s, event, color, duration_s FROM markers "
                                               "ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [(1.5, "door opened - by staff", "blue", None),
                                            (2.5, "only a note", "blue", None),
                                            (3.5, "only a label", "blue", None)]
    finally:
        await db.dispose()


#: What each role granted before 0005 (the role table of that version, written out).
ROLE_PERMISSIONS_0004 = {
    "viewer": {"rooms.view", "cameras.view", "live.watch", "recordings.view"},
    "operator": {"rooms.view", "cameras.view", "live.watch", "recordings.view", "recordings.record",
                 "recordings.edit", "markers.write", "clips.create", "cameras.control"},
    "admin": {"rooms.view", "cameras.view", "live.watch", "recordings.view", "recordings.record", "recordings.edit",
              "markers.write", "clips.create", "cameras.control", "rooms.manage", "cameras.manage", "users.manage",
              "servers.manage", "system.view", "audit.view", "recordings.delete", "markers.manage"},
}


async def test_upgrade_to_0005_keeps_every_users_access(database_url):
    """The roles become built-in groups: each user may do what their role allowed, in every room,
    and sees every recording, as before; nobody gains more than the new rights that did not exist."""
    from valt_core.auth.access import load_access, recording_filter
    from valt_core.db.models import Recording, User

    db = Database(database_url)
    try:
        await upgrade_to(db, "0004")
        async with db.engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO rooms (name, description, created_at) "
                                       "VALUES ('r', '', '2026-01-01 00:00:00.000000')"))
            # A site's own group named like a built-in one keeps its name.
            await conn.execute(sa.text("INSERT INTO groups (name, description, created_at) "
                                       "VALUES ('Viewers', 'ours', '2026-01-01 00:00:00.000000')"))
            for name, role in (("ann", "admin"), ("otto", "operator"), ("vic", "viewer"), ("vera", "viewer")):
                await conn.execute(sa.text("INSERT INTO users (username, display_name, email, role, auth_backend, "
                                           "disabled, created_at) VALUES (:n, '', '', :r, 'local', 0, "
                                           "'2026-01-01 00:00:00.000000')"), {"n": name, "r": role})
            for author in (1, 2, None):
                await conn.execute(sa.text("INSERT INTO recordings (room_id, author_id, name, state, started_at, "
                                           "legal_hold, notes) VALUES (1, :a, 'rec', 'stopped', "
                                           "'2026-01-01 00:00:00.000000', 0, '')"), {"a": author})
        await db.upgrade()
        # Rights that did not exist before 0005 (recordings.hold: 0007, Administrators only;
        # uploads.create: 0008, Administrators and Operators).
        new_rights = {"clips.download", "recordings.view_all", "recordings.share", "recordings.change_author",
                      "recordings.hold", "uploads.create"}
        async with db.session() as s:
            users = {u.username: u for u in (await s.exec(sa.select(User))).scalars()}
            names = sorted((await s.exec(sa.text("SELECT name FROM groups"))).scalars())
        assert names == ["Administrators", "Operators", "Viewers", "Viewers (built-in)"]
        for name, role in (("ann", "admin"), ("otto", "operator"), ("vic", "viewer"), ("vera", "viewer")):
            access = await load_access(db, users[name])
            assert access.role == role
            held = set(access.rights)
            assert held - new_rights == ROLE_PERMISSIONS_0004[role], name
            assert all(access.allows(r, 1) and access.rooms(r) is None for r in held)  # every room, as before
            async with db.session() as s:
                seen = (await s.exec(sa.select(sa.func.count()).select_from(Recording)
                                     .where(recording_filter(access)))).one()[0]
            assert seen == 3, name  # every recording, whoever made it
        assert not (await load_access(db, users["vic"])).allows("clips.create")
        assert (await load_access(db, users["ann"])).allows("recordings.hold")
        assert not (await load_access(db, users["otto"])).allows("recordings.hold")
    finally:
        await db.dispose()


async def test_upgrade_to_0009_lets_a_recording_have_no_room_and_keeps_its_rows(database_url):
    """0009 drops the NOT NULL of recordings.room_id without rebuilding the table: its tracks and
    markers stay (a rebuild inside the upgrade's transaction would cascade the drop into them)."""
    from alembic import command

    from valt_core.db import alembic_config

    db = Database(database_url)
    try:
        await upgrade_to(db, "0007")
        async with db.engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO rooms (name, description, created_at) "
                                       "VALUES ('r', '', '2026-01-01 00:00:00.000000')"))
            await conn.execute(sa.text("INSERT INTO recordings (room_id, name, state, started_at, legal_hold, notes) "
                                       "VALUES (1, 'rec', 'stopped', '2026-01-01 00:00:00.000000', 0, '')"))
            await conn.execute(sa.text("INSERT INTO tracks (recording_id, camera_name, state, video_codec, "
                                       "audio_codec, width, height, storage_prefix) "
                                       "VALUES (1, 'c', 'stopped', '', '', 0, 0, '')"))
            await conn.execute(sa.text("INSERT INTO markers (recording_id, time_s, event, color, created_at) "
                                       "VALUES (1, 1.5, 'door', 'blue', '2026-01-01 00:00:00.000000')"))
        await db.upgrade()
        async with db.engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO recordings (room_id, name, state, started_at, legal_hold, notes) "
                                       "VALUES (NULL, 'upload', 'stopped', '2026-01-01 00:00:00.000000', 0, '')"))
            counts = [(await conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}"))).scalar_one()
                      for t in ("recordings", "tracks", "markers")]
        assert counts == [2, 1, 1]

        def down(conn):
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0007")

        await db._run_sync(down)
        async with db.engine.begin() as conn:
            assert (await conn.execute(sa.text("SELECT name FROM recordings"))).scalars().all() == ["rec"]
            with pytest.raises(sa.exc.IntegrityError):
                await conn.execute(sa.text("INSERT INTO recordings (room_id, name, state, started_at, legal_hold, "
                                           "notes) VALUES (NULL, 'x', 'stopped', '2026-01-01 00:00:00', 0, '')"))
    finally:
        await db.dispose()
