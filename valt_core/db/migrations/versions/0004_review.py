"""review: markers as events with time, duration and colour; indexes for finding recordings

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 12:00:00

- ``markers``: ``at_s`` becomes ``time_s``; ``label`` and ``note`` become one ``event`` text of
  up to 500 characters (a marker that had both keeps both, joined by " - "); new ``duration_s``,
  ``color`` (``blue`` for existing markers) and ``updated_at``.
- ``recordings``: indexes on ``started_at`` (the Review page's date filter) and ``author_id``.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import valt_core.db.types

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('markers') as batch:
        batch.add_column(sa.Column('time_s', sa.Float(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('duration_s', sa.Float(), nullable=True))
        batch.add_column(sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False,
                                   server_default=''))
        batch.add_column(sa.Column('color', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False,
                                   server_default='blue'))
        batch.add_column(sa.Column('updated_at', valt_core.db.types.UTCDateTime(), nullable=True))
    markers = sa.table('markers', sa.column('at_s', sa.Float()), sa.column('time_s', sa.Float()),
                       sa.column('label', sa.String()), sa.column('note', sa.Text()),
                       sa.column('event', sa.String()))
    joined = sa.case(
        (sa.and_(markers.c.label != '', markers.c.note != ''), markers.c.label + ' - ' + markers.c.note),
        (markers.c.label != '', markers.c.label),
        else_=markers.c.note,
    )
    op.execute(markers.update().values(time_s=markers.c.at_s, event=sa.func.substr(joined, 1, 500)))
    with op.batch_alter_table('markers') as batch:
        for column in ('at_s', 'label', 'note'):
            batch.drop_column(column)
    with op.batch_alter_table('recordings') as batch:
        batch.create_index('ix_recordings_started_at', ['started_at'], unique=False)
        batch.create_index('ix_recordings_author_id', ['author_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recordings') as batch:
        batch.drop_index('ix_recordings_author_id')
        batch.drop_index('ix_recordings_started_at')
    with op.batch_alter_table('markers') as batch:
        batch.add_column(sa.Column('at_s', sa.Float(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False,
                                   server_default=''))
        batch.add_column(sa.Column('note', sa.Text(), nullable=False, server_default=''))
    markers = sa.table('markers', sa.column('at_s', sa.Float()), sa.column('time_s', sa.Float()),
                       sa.column('label', sa.String()), sa.column('note', sa.Text()),
                       sa.column('event', sa.String()))
    op.execute(markers.update().values(at_s=markers.c.time_s, label=sa.func.substr(markers.c.event, 1, 200),
                                       note=markers.c.event))
    with op.batch_alter_table('markers') as batch:
        for column in ('updated_at', 'color', 'event', 'duration_s', 'time_s'):
            batch.drop_column(column)
