"""sign-in: directory-managed group memberships and redirect sign-in flows

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 19:55:00

- ``group_members.source``: empty for a membership an admin gave; an auth backend's name
  (``ldap``, ``oidc``, ``saml``) for one that backend's groups gave. A sign-in or the directory
  sync replaces only the memberships of its own source, so hand-given ones survive.
- ``sign_in_flows``: the state of a redirect sign-in between the start and the provider's
  answer (a PKCE verifier, a nonce, a SAML request id), found by the SHA-256 of its random
  state value, used once, gone after ten minutes.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import valt_core.db.types

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('group_members') as batch:
        batch.add_column(sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False,
                                   server_default=''))
    op.create_table(
        'sign_in_flows',
        sa.Column('state_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('backend', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column('browser_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('next_path', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column('data', sa.Text(), nullable=False),
        sa.Column('expires_at', valt_core.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('state_hash'),
    )
    op.create_index('ix_sign_in_flows_expires_at', 'sign_in_flows', ['expires_at'])


def downgrade() -> None:
    op.drop_index('ix_sign_in_flows_expires_at', 'sign_in_flows')
    op.drop_table('sign_in_flows')
    with op.batch_alter_table('group_members') as batch:
        batch.drop_column('source')
