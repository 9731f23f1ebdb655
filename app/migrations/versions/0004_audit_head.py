"""The audit chain's head row exists from the start, so appenders always have a row
to lock (two first appenders could otherwise both insert it).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64


def upgrade() -> None:
    op.get_bind().execute(
        sa.text(
            "INSERT INTO audit_head (id, sequence, hash) SELECT 1, 0, :genesis "
            "WHERE NOT EXISTS (SELECT 1 FROM audit_head WHERE id = 1)"
        ),
        {"genesis": GENESIS_HASH},
    )


def downgrade() -> None:
    op.execute("DELETE FROM audit_head WHERE id = 1 AND sequence = 0")
