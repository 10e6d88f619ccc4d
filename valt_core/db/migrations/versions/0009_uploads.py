"""uploads: resumable upload of offline recordings (tus 1.0), and the right to upload

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-06 21:00:00

- ``uploads`` and ``upload_files``: an upload session (name, room, author, information,
  shares) and its videos, with the offset the server has committed for each, so an upload
  resumes where it stopped, even after a restart.
- ``uploads.create`` is a new right; the built-in groups that may record (Administrators and
  Operators) get it here. Other groups get it from an admin.

Revises 0007 until the RTMP migration (0008) lands; the lead renumbers at merge.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import valt_core.db.types

revision = '0009'
down_revision = '0007'
branch_labels = None
depends_on = None

groups = sa.table('groups', sa.column('id', sa.Integer()), sa.column('builtin', sa.String()))
rights = sa.table('rights', sa.column('group_id', sa.Integer()), sa.column('user_id', sa.Integer()),
                  sa.column('room_id', sa.Integer()), sa.column('right', sa.String()))
#: The built-in groups that record, by their role.
UPLOADERS = ('admin', 'operator')


def upgrade() -> None:
    op.create_table(
        'uploads',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('room_id', sa.Integer(), nullable=False),
        sa.Column('author_id', sa.Integer(), nullable=True),
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('information', sa.JSON(), nullable=False),
        sa.Column('shares', sa.JSON(), nullable=False),
        sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column('recording_id', sa.Integer(), nullable=True),
        sa.Column('created_at', valt_core.db.types.UTCDateTime(), nullable=False),
        sa.Column('expires_at', valt_core.db.types.UTCDateTime(), nullable=False),
        sa.Column('finished_at', valt_core.db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['author_id'], ['users.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('uploads') as batch:
        batch.create_index('ix_uploads_user_id', ['user_id'], unique=False)
        batch.create_index('ix_uploads_state', ['state'], unique=False)
        batch.create_index('ix_uploads_expires_at', ['expires_at'], unique=False)
    op.create_table(
        'upload_files',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('upload_id', sa.Integer(), nullable=False),
        sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column('length', sa.BigInteger(), nullable=False),
        sa.Column('offset', sa.BigInteger(), nullable=False),
        sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('complete', sa.Boolean(), nullable=False),
        sa.Column('track_id', sa.Integer(), nullable=True),
        sa.Column('created_at', valt_core.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['track_id'], ['tracks.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('upload_files') as batch:
        batch.create_index('ix_upload_files_upload_id', ['upload_id'], unique=False)
    conn = op.get_bind()
    for (group_id,) in conn.execute(sa.select(groups.c.id).where(groups.c.builtin.in_(UPLOADERS))):
        conn.execute(rights.insert().values(group_id=group_id, user_id=None, room_id=None, right='uploads.create'))


def downgrade() -> None:
    op.execute(rights.delete().where(rights.c.right == 'uploads.create'))
    op.drop_table('upload_files')
    op.drop_table('uploads')
