"""legal hold: the right to put recordings under legal hold, for the Administrators

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 20:30:00

``recordings.hold`` is new; the built-in Administrators hold every right, so they are given it
here. Other groups get it from an admin.
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

groups = sa.table('groups', sa.column('id', sa.Integer()), sa.column('builtin', sa.String()))
rights = sa.table('rights', sa.column('group_id', sa.Integer()), sa.column('user_id', sa.Integer()),
                  sa.column('room_id', sa.Integer()), sa.column('right', sa.String()))


def upgrade() -> None:
    conn = op.get_bind()
    for (group_id,) in conn.execute(sa.select(groups.c.id).where(groups.c.builtin == 'admin')):
        conn.execute(rights.insert().values(group_id=group_id, user_id=None, room_id=None, right='recordings.hold'))


def downgrade() -> None:
    op.execute(rights.delete().where(rights.c.right == 'recordings.hold'))
