"""outcome mechanisms: correlation_results gains ``outcome_mechanism``

A result whose feature is its outcome by the rules of the game (kills, plant -> site executed,
defuse -> round win, signals the import rules derive from kills) is flagged, reported apart and
never ranked as a finding. Existing rows are false (they were stored before the classification).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        'correlation_results',
        sa.Column('outcome_mechanism', sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table('correlation_results') as batch:
        batch.drop_column('outcome_mechanism')
