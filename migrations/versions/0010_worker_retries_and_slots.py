"""the worker: webhook events keep what a retry needs, periodic jobs claim their slots

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 08:40:00

An event keeps the id of its object, so the worker can fetch and apply it again, and when it
is next due (or that it is dead, after its last attempt). A periodic job's run claims a row per
slot (job and scheduled time), so several workers run it once.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('object_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('dead_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f('ix_stripe_events_next_attempt_at'), ['next_attempt_at'], unique=False
        )
    op.create_table(
        'periodic_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job', sa.String(length=100), nullable=False),
        sa.Column('slot', sa.String(length=40), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('runs', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_periodic_runs')),
        sa.UniqueConstraint('job', 'slot', name=op.f('uq_periodic_runs_job')),
    )


def downgrade():
    op.drop_table('periodic_runs')
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stripe_events_next_attempt_at'))
        batch_op.drop_column('dead_at')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('object_id')
