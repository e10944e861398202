"""subscriptions keep Stripe's created time; plan credit lots name their subscription

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 03:40:00

Lists of a customer's subscriptions go by when Stripe created them, not by when a webhook
happened to arrive. Plan lots carry the subscription that granted them, so a rollover never
reaches across subscriptions and a subscription's end takes its own credits with it. Existing
rows are filled in from what they already say: a subscription's local creation time, and a plan
lot's source (``plan:``, ``rollover:`` and ``topup:`` sources name ``<subscription>:<start>``).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_created', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE subscriptions SET stripe_created = created_at")
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.alter_column('stripe_created', existing_type=sa.DateTime(timezone=True), nullable=False)

    with op.batch_alter_table('credit_lots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_subscription_id', sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f('ix_credit_lots_stripe_subscription_id'), ['stripe_subscription_id'], unique=False)
    connection = op.get_bind()
    lots = connection.execute(sa.text("SELECT id, source FROM credit_lots WHERE origin = 'plan'"))
    owners = [
        {"lot_id": lot_id, "owner": source.split(":")[1]}
        for lot_id, source in lots
        if source.split(":")[0] in ("plan", "rollover", "topup") and source.count(":") >= 2
    ]
    if owners:
        connection.execute(
            sa.text("UPDATE credit_lots SET stripe_subscription_id = :owner WHERE id = :lot_id"),
            owners,
        )


def downgrade():
    with op.batch_alter_table('credit_lots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_lots_stripe_subscription_id'))
        batch_op.drop_column('stripe_subscription_id')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('stripe_created')
