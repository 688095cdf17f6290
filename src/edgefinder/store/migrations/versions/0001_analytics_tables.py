"""analytics tables

Revision ID: 0001
Revises: 
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('analysis_runs',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('n_rows', sa.Integer(), nullable=True),
    sa.Column('n_tests', sa.Integer(), nullable=True),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('summary', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('purpose', sa.String(length=32), server_default='research/ops', nullable=False),
    sa.Column('disclaimer', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_analysis_runs'))
    )
    op.create_table('dead_letters',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('entry_id', sa.String(length=64), nullable=True),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('deliveries', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters'))
    )
    op.create_table('kills',
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('match_id', sa.String(length=128), nullable=False),
    sa.Column('round_no', sa.Integer(), nullable=False),
    sa.Column('ts', sa.Float(), nullable=False),
    sa.Column('killer_hash', sa.String(length=64), nullable=True),
    sa.Column('victim_hash', sa.String(length=64), nullable=True),
    sa.Column('killer_team', sa.String(length=128), nullable=True),
    sa.Column('victim_team', sa.String(length=128), nullable=True),
    sa.Column('weapon', sa.String(length=64), nullable=True),
    sa.Column('headshot', sa.Boolean(), nullable=True),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_kills'))
    )
    with op.batch_alter_table('kills', schema=None) as batch_op:
        batch_op.create_index('ix_kills_round', ['match_id', 'round_no'], unique=False)

    op.create_table('macro_outcomes',
    sa.Column('match_id', sa.String(length=128), nullable=False),
    sa.Column('round_no', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.String(length=128), nullable=False),
    sa.Column('round_win', sa.Integer(), nullable=False),
    sa.Column('econ_delta', sa.Float(), nullable=True),
    sa.Column('site_executed', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('match_id', 'round_no', 'team_id', name=op.f('pk_macro_outcomes'))
    )
    op.create_table('match_players',
    sa.Column('match_id', sa.String(length=128), nullable=False),
    sa.Column('player_hash', sa.String(length=64), nullable=False),
    sa.Column('team_id', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('match_id', 'player_hash', name=op.f('pk_match_players'))
    )
    op.create_table('matches',
    sa.Column('match_id', sa.String(length=128), nullable=False),
    sa.Column('map', sa.String(length=64), nullable=True),
    sa.Column('team_a', sa.String(length=128), nullable=True),
    sa.Column('team_b', sa.String(length=128), nullable=True),
    sa.Column('winner', sa.String(length=128), nullable=True),
    sa.Column('score', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('match_id', name=op.f('pk_matches'))
    )
    op.create_table('micro_actions',
    sa.Column('signal_id', sa.String(length=128), nullable=False),
    sa.Column('match_id', sa.String(length=128), nullable=False),
    sa.Column('round_no', sa.Integer(), nullable=True),
    sa.Column('team', sa.String(length=128), nullable=True),
    sa.Column('player_hash', sa.String(length=64), nullable=False),
    sa.Column('ts', sa.Float(), nullable=False),
    sa.Column('intent', sa.String(length=16), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('speed', sa.Float(), nullable=True),
    sa.Column('approach_velocity', sa.Float(), nullable=True),
    sa.Column('dist_to_objective', sa.Float(), nullable=True),
    sa.Column('features', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('artifact_url', sa.Text(), nullable=True),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('signal_id', name=op.f('pk_micro_actions'))
    )
    with op.batch_alter_table('micro_actions', schema=None) as batch_op:
        batch_op.create_index('ix_micro_actions_match_ts', ['match_id', 'ts'], unique=False)
        batch_op.create_index('ix_micro_actions_round', ['match_id', 'round_no'], unique=False)

    op.create_table('raw_events',
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('match_id', sa.String(length=128), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('ts', sa.Float(), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_raw_events'))
    )
    with op.batch_alter_table('raw_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_raw_events_match_id'), ['match_id'], unique=False)

    op.create_table('reviews',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('subject_kind', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reviewer', sa.String(length=128), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews'))
    )
    op.create_table('round_teams',
    sa.Column('match_id', sa.String(length=128), nullable=False),
    sa.Column('round_no', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.String(length=128), nullable=False),
    sa.Column('side', sa.String(length=16), nullable=True),
    sa.Column('bank_start', sa.Float(), nullable=True),
    sa.Column('loadout_value', sa.Float(), nullable=True),
    sa.Column('bank_end', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('match_id', 'round_no', 'team_id', name=op.f('pk_round_teams'))
    )
    op.create_table('rounds',
    sa.Column('match_id', sa.String(length=128), nullable=False),
    sa.Column('round_no', sa.Integer(), nullable=False),
    sa.Column('map', sa.String(length=64), nullable=True),
    sa.Column('start_ts', sa.Float(), nullable=True),
    sa.Column('end_ts', sa.Float(), nullable=True),
    sa.Column('winner', sa.String(length=128), nullable=True),
    sa.Column('win_reason', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('match_id', 'round_no', name=op.f('pk_rounds'))
    )
    op.create_table('site_events',
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('match_id', sa.String(length=128), nullable=False),
    sa.Column('round_no', sa.Integer(), nullable=False),
    sa.Column('ts', sa.Float(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('team', sa.String(length=128), nullable=False),
    sa.Column('site', sa.String(length=16), nullable=True),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_site_events'))
    )
    with op.batch_alter_table('site_events', schema=None) as batch_op:
        batch_op.create_index('ix_site_events_round', ['match_id', 'round_no'], unique=False)

    op.create_table('correlation_results',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('feature', sa.String(length=128), nullable=False),
    sa.Column('outcome', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('statistic', sa.Float(), nullable=True),
    sa.Column('effect', sa.Float(), nullable=True),
    sa.Column('ci_low', sa.Float(), nullable=True),
    sa.Column('ci_high', sa.Float(), nullable=True),
    sa.Column('p_value', sa.Float(), nullable=True),
    sa.Column('q_value', sa.Float(), nullable=True),
    sa.Column('significant', sa.Boolean(), nullable=False),
    sa.Column('exploratory', sa.Boolean(), nullable=False),
    sa.Column('direction', sa.String(length=16), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('purpose', sa.String(length=32), server_default='research/ops', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['analysis_runs.run_id'], name=op.f('fk_correlation_results_run_id_analysis_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_correlation_results'))
    )
    with op.batch_alter_table('correlation_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_correlation_results_feature'), ['feature'], unique=False)
        batch_op.create_index(batch_op.f('ix_correlation_results_run_id'), ['run_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('correlation_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_correlation_results_run_id'))
        batch_op.drop_index(batch_op.f('ix_correlation_results_feature'))

    op.drop_table('correlation_results')
    with op.batch_alter_table('site_events', schema=None) as batch_op:
        batch_op.drop_index('ix_site_events_round')

    op.drop_table('site_events')
    op.drop_table('rounds')
    op.drop_table('round_teams')
    op.drop_table('reviews')
    with op.batch_alter_table('raw_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_raw_events_match_id'))

    op.drop_table('raw_events')
    with op.batch_alter_table('micro_actions', schema=None) as batch_op:
        batch_op.drop_index('ix_micro_actions_round')
        batch_op.drop_index('ix_micro_actions_match_ts')

    op.drop_table('micro_actions')
    op.drop_table('matches')
    op.drop_table('match_players')
    op.drop_table('macro_outcomes')
    with op.batch_alter_table('kills', schema=None) as batch_op:
        batch_op.drop_index('ix_kills_round')

    op.drop_table('kills')
    op.drop_table('dead_letters')
    op.drop_table('analysis_runs')
