"""usage counters per customer, feature and period, filled from the events recorded so far

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 10:00:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "usage_counters",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("feature_key", sa.String(length=64), nullable=False),
        sa.Column("period_key", sa.String(length=255), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_usage_counters_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint(
            "customer_id", "feature_key", "period_key", name=op.f("pk_usage_counters")
        ),
    )
    op.execute(
        "INSERT INTO usage_counters (customer_id, feature_key, period_key, used) "
        "SELECT customer_id, feature_key, period_key, SUM(units) FROM usage_events "
        "GROUP BY customer_id, feature_key, period_key"
    )
    # The counters answer what this index served (a period's sum); recording no longer pays for it.
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_events_period")


def downgrade():
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_usage_events_period", ["customer_id", "feature_key", "period_key"], unique=False
        )

    op.drop_table("usage_counters")
