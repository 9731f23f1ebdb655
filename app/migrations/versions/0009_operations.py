"""Operations: the row the readiness probe writes (and rolls back) to prove the database
takes writes, not only reads (issue 16 item 5).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "readiness_probe",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("probed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readiness_probe")),
    )
    op.execute("INSERT INTO readiness_probe (id) VALUES (1)")


def downgrade() -> None:
    op.drop_table("readiness_probe")
