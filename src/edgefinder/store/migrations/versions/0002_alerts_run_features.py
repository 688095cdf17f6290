"""alerts, run features, run lifecycle columns (queued_at, trigger, worker, db_queries, db_seconds)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('previous_run_id', sa.String(length=36), nullable=False),
    sa.Column('feature', sa.String(length=128), nullable=False),
    sa.Column('outcome', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('before_estimate', sa.Float(), nullable=True),
    sa.Column('before_ci_low', sa.Float(), nullable=True),
    sa.Column('before_ci_high', sa.Float(), nullable=True),
    sa.Column('before_q_value', sa.Float(), nullable=True),
    sa.Column('before_significant', sa.Boolean(), nullable=True),
    sa.Column('after_estimate', sa.Float(), nullable=True),
    sa.Column('after_ci_low', sa.Float(), nullable=True),
    sa.Column('after_ci_high', sa.Float(), nullable=True),
    sa.Column('after_q_value', sa.Float(), nullable=True),
    sa.Column('after_significant', sa.Boolean(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=128), nullable=True),
    sa.Column('webhook_attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('webhook_failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('webhook_delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('webhook_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['analysis_runs.run_id'], name=op.f('fk_alerts_run_id_analysis_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_created_at', ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_run_id'), ['run_id'], unique=False)

    op.create_table('run_features',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('n_rows', sa.Integer(), nullable=False),
    sa.Column('parquet', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['analysis_runs.run_id'], name=op.f('fk_run_features_run_id_analysis_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_run_features'))
    )
    with op.batch_alter_table('analysis_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('trigger', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('worker', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('db_queries', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('db_seconds', sa.Float(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('analysis_runs', schema=None) as batch_op:
        batch_op.drop_column('db_seconds')
        batch_op.drop_column('db_queries')
        batch_op.drop_column('worker')
        batch_op.drop_column('trigger')
        batch_op.drop_column('queued_at')

    op.drop_table('run_features')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_run_id'))
        batch_op.drop_index('ix_alerts_created_at')

    op.drop_table('alerts')
