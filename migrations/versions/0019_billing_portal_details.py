"""billing portal: billing addresses and tax ids

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-10 10:00:00

What a customer keeps in Stripe's billing portal (its billing address and tax IDs) is mirrored
for the account page.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "billing_addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("line1", sa.String(length=255), nullable=True),
        sa.Column("line2", sa.String(length=255), nullable=True),
        sa.Column("city", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=255), nullable=True),
        sa.Column("postal_code", sa.String(length=32), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_billing_addresses_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_addresses")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_billing_addresses_customer_id")),
    )
    op.create_table(
        "tax_ids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stripe_tax_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("verification_status", sa.String(length=32), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_tax_ids_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tax_ids")),
        sa.UniqueConstraint("stripe_tax_id", name=op.f("uq_tax_ids_stripe_tax_id")),
    )
    with op.batch_alter_table("tax_ids", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tax_ids_customer_id"), ["customer_id"], unique=False)


def downgrade():
    with op.batch_alter_table("tax_ids", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tax_ids_customer_id"))
    op.drop_table("tax_ids")
    op.drop_table("billing_addresses")
