"""users have a role: customer, or operator of the back office

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 13:00:00

Every existing user is a customer; `flask users create-operator EMAIL` makes operators.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'role',
                sa.Enum('customer', 'operator', name='user_role', native_enum=False, length=32),
                nullable=False,
                server_default='customer',
            )
        )


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('role')
