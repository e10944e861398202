"""what usage costs to serve, and each billing period's revenue to set it against

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 17:24:03

Usage events keep their cost (billionths of a minor unit) and where it came from; usage_costs
keeps each period's totals by feature and model as events are recorded; billing_periods keeps
what each period of a subscription bills, and what the margin floor billed for it.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('billing_periods',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('period_key', sa.String(length=255), nullable=False),
    sa.Column('stripe_subscription_id', sa.String(length=255), nullable=False),
    sa.Column('plan_key', sa.String(length=64), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('trialing', sa.Boolean(), nullable=False),
    sa.Column('recurring_amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('floor_billed', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('floor_alerted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_billing_periods_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_periods')),
    sa.UniqueConstraint('period_key', name=op.f('uq_billing_periods_period_key'))
    )
    with op.batch_alter_table('billing_periods', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_periods_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_billing_periods_starts_at'), ['starts_at'], unique=False)

    op.create_table('usage_costs',
    sa.Column('period_key', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('feature_key', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=255), nullable=False),
    sa.Column('nanos', sa.BigInteger(), nullable=False),
    sa.Column('events', sa.BigInteger(), nullable=False),
    sa.Column('unpriced', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_usage_costs_customer_id_customers')),
    sa.PrimaryKeyConstraint('period_key', 'customer_id', 'feature_key', 'model', name=op.f('pk_usage_costs'))
    )
    with op.batch_alter_table('usage_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cost_nanos', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('cost_source', sa.String(length=16), nullable=True))



def downgrade():
    with op.batch_alter_table('usage_events', schema=None) as batch_op:
        batch_op.drop_column('cost_source')
        batch_op.drop_column('cost_nanos')

    op.drop_table('usage_costs')
    with op.batch_alter_table('billing_periods', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_billing_periods_starts_at'))
        batch_op.drop_index(batch_op.f('ix_billing_periods_customer_id'))

    op.drop_table('billing_periods')
