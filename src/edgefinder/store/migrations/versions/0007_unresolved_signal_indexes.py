"""unresolved signals: partial indexes on micro_actions rows still lacking their team or round

After every batch that brings a roster or round windows, ingest fills in ``team`` and
``round_no`` of the match's signals that still lack them. Without these indexes that UPDATE
visited every signal of the match to find the few still unresolved (EXPLAIN ANALYZE on 200
simulated matches, 173,736 signals, 3 matches: the team fill-in joined all 2,000 roster rows and
touched 1,728 buffers in 5.3 ms); with them it reads only the unresolved rows (9 buffers,
0.06 ms). The indexes hold only rows whose value is missing, so they stay small: nearly every
signal is resolved as it is inserted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        'ix_micro_actions_unresolved_team',
        'micro_actions',
        ['match_id', 'player_hash'],
        postgresql_where=sa.text('team IS NULL'),
        sqlite_where=sa.text('team IS NULL'),
    )
    op.create_index(
        'ix_micro_actions_unresolved_round',
        'micro_actions',
        ['match_id', 'ts'],
        postgresql_where=sa.text('round_no IS NULL'),
        sqlite_where=sa.text('round_no IS NULL'),
    )


def downgrade() -> None:
    op.drop_index('ix_micro_actions_unresolved_round', table_name='micro_actions')
    op.drop_index('ix_micro_actions_unresolved_team', table_name='micro_actions')
