"""causal verdict column on correlation_results

Revision ID: 0002
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
# written as 0001 -> 0002 beside 0001 -> 0004 on another branch; chained after 0004 when main was
# merged in, so a database already at 0004 upgrades by one step (ids are labels, the chain is the order)
down_revision = '0004'
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
