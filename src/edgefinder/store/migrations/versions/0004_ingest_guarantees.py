"""ingest guarantees: raw_events keeps the whole envelope; one dead letter per entry, with its kind

raw_events gains ``occurred_at``, ``actor_hash`` and ``team`` (the duplicate-id rule compares a
copy with the stored one on everything the event carries). dead_letters gains ``kind`` (backfilled
from the reason) and a unique index on ``(source, entry_id)``; duplicates an earlier version could
leave behind are removed first, keeping the oldest row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('raw_events', sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('raw_events', sa.Column('actor_hash', sa.String(length=64), nullable=True))
    op.add_column('raw_events', sa.Column('team', sa.String(length=128), nullable=True))
    op.add_column('dead_letters', sa.Column('kind', sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE dead_letters SET kind = CASE "
        "WHEN reason LIKE 'oversize%' THEN 'oversize' "
        "WHEN reason LIKE 'delivery limit%' THEN 'delivery_limit' "
        "WHEN reason LIKE 'database rejected%' THEN 'rejected' "
        "ELSE 'invalid' END"
    )
    op.execute(
        "DELETE FROM dead_letters WHERE entry_id IS NOT NULL AND id NOT IN "
        "(SELECT min(id) FROM dead_letters WHERE entry_id IS NOT NULL GROUP BY source, entry_id)"
    )
    op.create_index('uq_dead_letters_source_entry_id', 'dead_letters', ['source', 'entry_id'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_dead_letters_source_entry_id', table_name='dead_letters')
    with op.batch_alter_table('dead_letters') as batch:
        batch.drop_column('kind')
    with op.batch_alter_table('raw_events') as batch:
        batch.drop_column('team')
        batch.drop_column('actor_hash')
        batch.drop_column('occurred_at')
