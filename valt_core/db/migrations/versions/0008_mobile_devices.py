"""mobile devices: phones and tablets that push live video over RTMP, and the upload right

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 21:00:00

- ``mobile_devices``: one row per enrolled device, tied to its camera (driver ``mobile``, whose
  settings hold the SHA-256 of its stream key), the person whose app uses it, and how its key
  was used (refused publishes, the last publish and where from).
- ``uploads.create`` is a new right (enrolling a device needs it, as uploading will); the built-in
  groups that record (Administrators and Operators) get it here, unless they have it already
  (the upload migration grants the same right).
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import valt_core.db.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

groups = sa.table('groups', sa.column('id', sa.Integer()), sa.column('builtin', sa.String()))
rights = sa.table('rights', sa.column('group_id', sa.Integer()), sa.column('user_id', sa.Integer()),
                  sa.column('room_id', sa.Integer()), sa.column('right', sa.String()))


def upgrade() -> None:
    op.create_table(
        'mobile_devices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('camera_id', sa.Integer(), nullable=False),
        sa.Column('device', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('key_created_at', valt_core.db.types.UTCDateTime(), nullable=True),
        sa.Column('key_revoked_at', valt_core.db.types.UTCDateTime(), nullable=True),
        sa.Column('refused_publishes', sa.Integer(), nullable=False),
        sa.Column('last_refused_at', valt_core.db.types.UTCDateTime(), nullable=True),
        sa.Column('last_published_at', valt_core.db.types.UTCDateTime(), nullable=True),
        sa.Column('last_published_from', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('created_at', valt_core.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['camera_id'], ['cameras.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('camera_id'),
        sa.UniqueConstraint('device'),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('mobile_devices') as batch:
        batch.create_index('ix_mobile_devices_user_id', ['user_id'], unique=False)
    conn = op.get_bind()
    for (group_id,) in conn.execute(sa.select(groups.c.id).where(groups.c.builtin.in_(['admin', 'operator']))):
        held = conn.execute(sa.select(rights.c.group_id).where(
            rights.c.group_id == group_id, rights.c.right == 'uploads.create', rights.c.room_id.is_(None))).first()
        if held is None:
            conn.execute(rights.insert().values(group_id=group_id, user_id=None, room_id=None, right='uploads.create'))


def downgrade() -> None:
    op.execute(rights.delete().where(rights.c.right == 'uploads.create'))
    # The table's indexes go with it (MariaDB refuses to drop one a foreign key needs first).
    op.drop_table('mobile_devices')
