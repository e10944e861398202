"""overage batches are claimed by one forwarder at a time

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 09:05:00

A forwarder claims a batch until a time before it sends it; another forwarder leaves it alone
until then, and takes it over after, if the first one died.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('overage_batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('overage_batches', schema=None) as batch_op:
        batch_op.drop_column('claimed_until')
