"""what the back office's figures need: monthly amounts, dunning, cards, revenue history

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 14:40:00

Subscriptions and subscription invoices keep what they are worth a month; invoices keep
Stripe's retry schedule; customers keep their default card's brand and expiry; webhook events
keep the Stripe customer they touch. Revenue changes and daily snapshots are the history the
revenue page draws.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('monthly_amount', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('quantity', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('currency', sa.String(length=3), nullable=True))
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('next_payment_attempt', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('monthly_amount', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_brand', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('card_last4', sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column('card_expires_on', sa.Date(), nullable=True))
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_customer_id', sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f('ix_stripe_events_stripe_customer_id'), ['stripe_customer_id'], unique=False)

    op.create_table('revenue_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('mrr_before', sa.BigInteger(), nullable=False),
    sa.Column('mrr_after', sa.BigInteger(), nullable=False),
    sa.Column('movement', sa.Enum('new', 'expansion', 'contraction', 'churn', 'reactivation', name='revenue_movement', native_enum=False, length=32), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_revenue_changes_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_revenue_changes'))
    )
    with op.batch_alter_table('revenue_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revenue_changes_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_revenue_changes_customer_id'), ['customer_id'], unique=False)

    op.create_table('revenue_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('plan_key', sa.String(length=64), nullable=False),
    sa.Column('tier', sa.String(length=64), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('mrr', sa.BigInteger(), nullable=False),
    sa.Column('past_due_mrr', sa.BigInteger(), nullable=False),
    sa.Column('subscriptions', sa.Integer(), nullable=False),
    sa.Column('trialing', sa.Integer(), nullable=False),
    sa.Column('trial_pipeline', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_revenue_snapshots')),
    sa.UniqueConstraint('day', 'plan_key', 'currency', name=op.f('uq_revenue_snapshots_day'))
    )
    with op.batch_alter_table('revenue_snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revenue_snapshots_day'), ['day'], unique=False)


def downgrade():
    with op.batch_alter_table('revenue_snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revenue_snapshots_day'))
    op.drop_table('revenue_snapshots')
    with op.batch_alter_table('revenue_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revenue_changes_customer_id'))
        batch_op.drop_index(batch_op.f('ix_revenue_changes_at'))
    op.drop_table('revenue_changes')
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stripe_events_stripe_customer_id'))
        batch_op.drop_column('stripe_customer_id')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('card_expires_on')
        batch_op.drop_column('card_last4')
        batch_op.drop_column('card_brand')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('monthly_amount')
        batch_op.drop_column('next_payment_attempt')
        batch_op.drop_column('attempt_count')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('currency')
        batch_op.drop_column('quantity')
        batch_op.drop_column('monthly_amount')
