"""api key scopes

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08 10:00:00

A key is `read` or `read write` (write includes read). Keys made before scopes existed could do
everything, so they get `read write`. The CHECK constraint holds every key to one of the two:
the entitlement check's one query relies on every key having read. On PostgreSQL a change to a
key's scopes is an UPDATE of api_keys, which already drops every worker's cached keys (0007).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    # Batch mode: SQLite adds a CHECK constraint only by copying the table.
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('scopes', sa.String(length=32), server_default='read write', nullable=False)
        )
        batch_op.create_check_constraint(
            op.f('ck_api_keys_scopes'), "scopes IN ('read', 'read write')"
        )


def downgrade():
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_api_keys_scopes'), type_='check')
        batch_op.drop_column('scopes')
