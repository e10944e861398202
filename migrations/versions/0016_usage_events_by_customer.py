"""a customer's usage events, newest first, without a sort

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 15:00:00

The back office's customer page lists a customer's usage events a page at a time; with a
million events the busiest customer's were sorted on every page.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('usage_events', schema=None) as batch_op:
        batch_op.create_index('ix_usage_events_customer_id_id', ['customer_id', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('usage_events', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_events_customer_id_id')
