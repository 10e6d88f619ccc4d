"""hardening: ids never reused, sign-in throttle, camera status reason, keyed audit chain

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 02:50:00

- Every table with an integer id becomes AUTOINCREMENT on SQLite, which otherwise gives the
  id of a deleted last row to the next row (MariaDB never reuses them: nothing to do there).
  SQLite can only do that by rebuilding the table, so foreign keys are switched off for the
  rebuild (a DROP TABLE with them on would run the ON DELETE actions of every child row) and
  checked afterwards.
- ``users.failed_logins`` / ``locked_until`` give way to ``login_throttle`` (per name typed
  and client address, counted atomically).
- ``cameras.status_reason``; ``audit_events.keyed`` (existing events are unkeyed) and a unique
  ``prev_hash``, which keeps the chain linear when several processes append.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import valt_core.db.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

ID_TABLES = ("users", "groups", "rights", "media_servers", "rooms", "cameras", "recordings", "tracks",
             "segments", "gaps", "markers", "clips", "clip_files", "audit_events", "api_tokens")


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    sqlite = _sqlite()
    if sqlite:
        op.execute("PRAGMA foreign_keys=OFF")
    for table in ID_TABLES:
        kwargs = {"recreate": "always", "table_kwargs": {"sqlite_autoincrement": True}} if sqlite else {}
        with op.batch_alter_table(table, **kwargs) as batch:
            if table == "users":
                batch.drop_column("failed_logins")
                batch.drop_column("locked_until")
            elif table == "cameras":
                batch.add_column(sa.Column("status_reason", sqlmodel.sql.sqltypes.AutoString(length=200),
                                           nullable=False, server_default=""))
            elif table == "audit_events":
                batch.add_column(sa.Column("keyed", sa.Boolean(), nullable=False, server_default=sa.false()))
                batch.create_unique_constraint("uq_audit_events_prev_hash", ["prev_hash"])
    op.create_table(
        "login_throttle",
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=150), nullable=False),
        sa.Column("remote_addr", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", valt_core.db.types.UTCDateTime(), nullable=True),
        sa.Column("last_attempt_at", valt_core.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("username", "remote_addr"),
    )
    op.create_index("ix_login_throttle_last_attempt_at", "login_throttle", ["last_attempt_at"])
    if sqlite:
        broken = op.get_bind().exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"foreign keys broken by the table rebuild: {broken[:5]}")
        op.execute("PRAGMA foreign_keys=ON")


def downgrade() -> None:
    op.drop_index("ix_login_throttle_last_attempt_at", table_name="login_throttle")
    op.drop_table("login_throttle")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_constraint("uq_audit_events_prev_hash", type_="unique")
        batch.drop_column("keyed")
    with op.batch_alter_table("cameras") as batch:
        batch.drop_column("status_reason")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_until", valt_core.db.types.UTCDateTime(), nullable=True))
