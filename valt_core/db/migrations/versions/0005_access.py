"""access: the three roles become built-in groups; video access by author; sharing

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 01:30:00

- ``groups.builtin``: ``admin``, ``operator`` or ``viewer`` marks the three built-in groups
  (Administrators, Operators, Viewers), which this migration creates with exactly the rights
  the roles of the same name granted, and fills with the users of each role.
- ``video_access``: a group's access to recordings by their author (one author, one group's
  members, or every author). Operators and Viewers get every author's, as every role that could
  view recordings saw all of them before.
- ``recording_shares``: a recording shared with a user or a group.
- ``users.role`` goes: what a user may do comes from their groups.
- ``markers`` is AUTOINCREMENT again on SQLite: 0004's rebuild of the table lost it, so the id
  of a deleted last marker could be handed to the next one (an audit entry naming it would then
  name another). SQLite rebuilds ``users`` and ``markers`` with foreign keys switched off (a
  DROP TABLE with them on would run the ON DELETE actions of every child row), and checks them
  afterwards, as 0002 does.

The rights are written out here as they were at this revision, not imported, so the migration
does the same thing whatever later code says.
"""

from datetime import datetime, timezone

import sqlalchemy as sa
import sqlmodel
from alembic import op

import valt_core.db.types

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

VIEWER = ("rooms.view", "cameras.view", "live.watch", "recordings.view", "clips.download")
OPERATOR = VIEWER + ("recordings.record", "recordings.edit", "markers.write", "clips.create", "cameras.control")
ADMIN = OPERATOR + ("rooms.manage", "cameras.manage", "users.manage", "servers.manage", "system.view",
                    "audit.view", "recordings.delete", "markers.manage", "recordings.view_all",
                    "recordings.share", "recordings.change_author")
#: role -> (the built-in group's name, its description, its rights, video access to every author)
BUILTIN = {
    "admin": ("Administrators", "Everything, in every room; sees every recording.", ADMIN, False),
    "operator": ("Operators", "Watch, record, control cameras, mark and cut clips, in every room.", OPERATOR, True),
    "viewer": ("Viewers", "Watch live and review recordings, in every room.", VIEWER, True),
}

groups = sa.table('groups', sa.column('id', sa.Integer()), sa.column('name', sa.String()),
                  sa.column('description', sa.String()), sa.column('builtin', sa.String()),
                  sa.column('created_at', valt_core.db.types.UTCDateTime()))
rights = sa.table('rights', sa.column('group_id', sa.Integer()), sa.column('user_id', sa.Integer()),
                  sa.column('room_id', sa.Integer()), sa.column('right', sa.String()))
members = sa.table('group_members', sa.column('group_id', sa.Integer()), sa.column('user_id', sa.Integer()))
video_access = sa.table('video_access', sa.column('group_id', sa.Integer()), sa.column('author_id', sa.Integer()),
                        sa.column('author_group_id', sa.Integer()))
users = sa.table('users', sa.column('id', sa.Integer()), sa.column('role', sa.String()))


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _rebuild() -> dict:
    # How SQLite rebuilds a table here: keeping AUTOINCREMENT (MariaDB alters in place).
    return {"recreate": "always", "table_kwargs": {"sqlite_autoincrement": True}} if _sqlite() else {}


def upgrade() -> None:
    if _sqlite():
        op.execute("PRAGMA foreign_keys=OFF")
    with op.batch_alter_table('groups') as batch:
        batch.add_column(sa.Column('builtin', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False,
                                   server_default=''))
    op.create_table(
        'video_access',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('group_id', sa.Integer(), nullable=False),
        sa.Column('author_id', sa.Integer(), nullable=True),
        sa.Column('author_group_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['group_id'], ['groups.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['author_id'], ['users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['author_group_id'], ['groups.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('video_access') as batch:
        batch.create_index('ix_video_access_group_id', ['group_id'], unique=False)
    op.create_table(
        'recording_shares',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('recording_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('group_id', sa.Integer(), nullable=True),
        sa.Column('can_download', sa.Boolean(), nullable=False),
        sa.Column('until', valt_core.db.types.UTCDateTime(), nullable=True),
        sa.Column('shared_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', valt_core.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['group_id'], ['groups.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['shared_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('recording_shares') as batch:
        batch.create_index('ix_recording_shares_recording_id', ['recording_id'], unique=False)
        batch.create_index('ix_recording_shares_user_id', ['user_id'], unique=False)
        batch.create_index('ix_recording_shares_group_id', ['group_id'], unique=False)

    conn = op.get_bind()
    taken = {row[0] for row in conn.execute(sa.select(groups.c.name))}
    now = datetime.now(timezone.utc)
    for role, (name, description, granted, every_author) in BUILTIN.items():
        while name in taken:  # a site's own group of that name keeps it
            name += " (built-in)"
        conn.execute(groups.insert().values(name=name, description=description, builtin=role, created_at=now))
        group_id = conn.execute(sa.select(groups.c.id).where(groups.c.builtin == role)).scalar_one()
        conn.execute(rights.insert(), [{"group_id": group_id, "user_id": None, "room_id": None, "right": r}
                                       for r in granted])
        if every_author:
            conn.execute(video_access.insert().values(group_id=group_id, author_id=None, author_group_id=None))
        conn.execute(members.insert().from_select(["group_id", "user_id"],
                                                  sa.select(sa.literal(group_id), users.c.id)
                                                  .where(users.c.role == role)))
    with op.batch_alter_table('users', **_rebuild()) as batch:
        batch.drop_column('role')
    if _sqlite():
        with op.batch_alter_table('markers', **_rebuild()):
            pass
        broken = op.get_bind().exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"foreign keys broken by the table rebuild: {broken[:5]}")
        op.execute("PRAGMA foreign_keys=ON")


def downgrade() -> None:
    if _sqlite():
        op.execute("PRAGMA foreign_keys=OFF")
    with op.batch_alter_table('users', **_rebuild()) as batch:
        batch.add_column(sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False,
                                   server_default='viewer'))
    conn = op.get_bind()
    for role in ("viewer", "operator", "admin"):  # the most powerful last, so it wins
        in_group = sa.select(members.c.user_id).join(groups, groups.c.id == members.c.group_id).where(
            groups.c.builtin == role)
        conn.execute(users.update().where(users.c.id.in_(in_group)).values(role=role))
    builtin = sa.select(groups.c.id).where(groups.c.builtin != '')
    conn.execute(rights.delete().where(rights.c.group_id.in_(builtin)))
    conn.execute(members.delete().where(members.c.group_id.in_(builtin)))
    op.drop_table('recording_shares')
    op.drop_table('video_access')
    conn.execute(groups.delete().where(groups.c.builtin != ''))
    with op.batch_alter_table('groups', **_rebuild()) as batch:
        batch.drop_column('builtin')
    if _sqlite():
        op.execute("PRAGMA foreign_keys=ON")
