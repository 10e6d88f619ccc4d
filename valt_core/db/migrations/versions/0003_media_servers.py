"""media servers: pool, NATS identity, version, live mode

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 08:00:00

- ``media_servers.pool``: cameras of a lost server move to another server of its pool.
- ``media_servers.nkey``: the public NATS nkey it signs in with (its seed is given once, never stored).
- ``media_servers.version``: what it said it runs, from its presence.
- ``media_servers.live_mode``: ``direct`` (browsers open its live port) or ``relayed`` (through the app server).
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('media_servers', sa.Column('pool', sa.String(length=150), nullable=False, server_default=''))
    op.add_column('media_servers', sa.Column('nkey', sa.String(length=60), nullable=False, server_default=''))
    op.add_column('media_servers', sa.Column('version', sa.String(length=40), nullable=False, server_default=''))
    op.add_column('media_servers', sa.Column('live_mode', sa.String(length=10), nullable=False,
                                             server_default='relayed'))


def downgrade() -> None:
    with op.batch_alter_table('media_servers') as batch:
        for column in ('live_mode', 'version', 'nkey', 'pool'):
            batch.drop_column(column)
