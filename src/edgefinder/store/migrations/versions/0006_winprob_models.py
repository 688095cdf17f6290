"""round win-probability models (one stored version per fit) and per-run action values

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    op.create_table(
        'winprob_models',
        sa.Column('model_version', sa.String(length=64), nullable=False),
        sa.Column('game', sa.String(length=16), nullable=False),
        sa.Column(
            'created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column('n_rounds', sa.Integer(), nullable=False),
        sa.Column('n_matches', sa.Integer(), nullable=False),
        sa.Column('metrics', json, nullable=False),
        sa.Column('baseline_metrics', json, nullable=False),
        sa.Column('details', json, nullable=True),
        sa.Column('model', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('model_version', name=op.f('pk_winprob_models')),
    )
    op.create_index(
        'ix_winprob_models_game_created', 'winprob_models', ['game', 'created_at'], unique=False
    )
    op.create_table(
        'action_values',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('run_id', sa.String(length=36), nullable=False),
        sa.Column('game', sa.String(length=16), nullable=False),
        sa.Column('stratum', sa.String(length=128), nullable=False),
        sa.Column('intent', sa.String(length=16), nullable=False),
        sa.Column('estimate', sa.Float(), nullable=True),
        sa.Column('ci_low', sa.Float(), nullable=True),
        sa.Column('ci_high', sa.Float(), nullable=True),
        sa.Column('p_value', sa.Float(), nullable=True),
        sa.Column('q_value', sa.Float(), nullable=True),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('n_matches', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ['run_id'],
            ['analysis_runs.run_id'],
            name=op.f('fk_action_values_run_id_analysis_runs'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_action_values')),
    )
    op.create_index(op.f('ix_action_values_run_id'), 'action_values', ['run_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_action_values_run_id'), table_name='action_values')
    op.drop_table('action_values')
    op.drop_index('ix_winprob_models_game_created', table_name='winprob_models')
    op.drop_table('winprob_models')
