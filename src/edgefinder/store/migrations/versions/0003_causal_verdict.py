"""causal verdict column on correlation_results

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # robust | fragile | not significant for the within-match causal effects, NULL for other tests;
    # the checks' figures live in details.refutations
    with op.batch_alter_table('correlation_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verdict', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('correlation_results', schema=None) as batch_op:
        batch_op.drop_column('verdict')
