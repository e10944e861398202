"""scheduled plan changes on the subscription mirror

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 00:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scheduled_plan_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('scheduled_change_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('scheduled_change_at')
        batch_op.drop_column('scheduled_plan_key')
