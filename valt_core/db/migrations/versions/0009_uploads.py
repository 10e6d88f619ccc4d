"""uploads: resumable upload of offline recordings (tus 1.0), and the right to upload

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 21:00:00

- ``uploads`` and ``upload_files``: an upload session (name, room, author, information,
  shares) and its videos, with the offset the server has committed for each, so an upload
  resumes where it stopped, even after a restart.
- ``recordings.room_id`` may be null: an uploaded session recorded outside any room. SQLite
  cannot alter a column, and rebuilding ``recordings`` inside the upgrade's transaction would
  cascade the drop into its tracks, markers and shares (``PRAGMA foreign_keys`` cannot be turned
  off inside a transaction); dropping a NOT NULL constraint does not change how rows are stored,
  so the table's declaration is edited in place, SQLite's documented way for exactly this
  (https://www.sqlite.org/lang_altertable.html#otheralter, "removing ... NOT NULL constraints").
- The right ``uploads.create`` came with 0008 (enrolling a mobile device needs it too), given
  there to the built-in groups that may record: nothing to grant here.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import valt_core.db.types

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

NOT_NULL = "room_id INTEGER NOT NULL"
NULL = "room_id INTEGER"


def _sqlite_declaration(old: str, new: str) -> None:
    conn = op.get_bind()
    sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type='table' AND name='recordings'").scalar_one()
    if sql.count(old) != 1:
        raise RuntimeError(f"recordings is not declared as this migration expects ({old!r}): {sql}")
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    conn.exec_driver_sql("PRAGMA writable_schema=ON")
    try:
        conn.exec_driver_sql("UPDATE sqlite_master SET sql=? WHERE type='table' AND name='recordings'",
                             (sql.replace(old, new),))
        # Every connection reads the schema again.
        conn.exec_driver_sql(f"PRAGMA schema_version={int(version) + 1}")
    finally:
        conn.exec_driver_sql("PRAGMA writable_schema=OFF")
    problems = conn.exec_driver_sql("PRAGMA integrity_check").scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"recordings after the change: {problems[:5]}")


def _room_nullable(nullable: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column('recordings', 'room_id', existing_type=sa.Integer(), nullable=nullable)
    elif nullable:
        _sqlite_declaration(NOT_NULL, NULL)
    else:
        _sqlite_declaration(NULL + ",", NOT_NULL + ",")


def upgrade() -> None:
    _room_nullable(True)
    op.create_table(
        'uploads',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('room_id', sa.Integer(), nullable=True),
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
        sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='SET NULL'),
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


def downgrade() -> None:
    op.drop_table('upload_files')
    op.drop_table('uploads')
    op.execute(sa.text("DELETE FROM recordings WHERE room_id IS NULL"))
    _room_nullable(False)
